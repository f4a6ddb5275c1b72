#!/usr/bin/env bash
# The krew archives: ${DIST_DIR:-dist}/kubectl-modelreg-<os>-<arch>.tar.gz for each platform asked (default:
# linux-amd64 linux-arm64 darwin-amd64 darwin-arm64). Each holds the client and CLI (`pip install
# modelreg`, not the operator) once per CPython it supports, lib/cp3XX (compiled dependencies such
# as pydantic-core are built per version and platform), and launchers that run it with the python3
# on the user's PATH, choosing the lib/ of that version. (Not a zipapp: compiled dependencies
# cannot be imported from a zip.) Wheels only: nothing is compiled here.
set -euo pipefail
cd "$(dirname "$0")/.."
pythons=(3.11 3.12 3.13 3.14)
platforms=("$@")
[ ${#platforms[@]} -gt 0 ] || platforms=(linux-amd64 linux-arm64 darwin-amd64 darwin-arm64)
pip=(python3 -m pip --disable-pip-version-check --quiet)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"${pip[@]}" wheel --no-deps --wheel-dir "$work/wheel" .
dist=${DIST_DIR:-dist}
mkdir -p "$dist"
for platform in "${platforms[@]}"; do
  case $platform in  # pip's platform tags for each (the oldest each dependency still ships)
    linux-amd64) tags=(manylinux2014_x86_64 manylinux_2_17_x86_64 manylinux_2_28_x86_64 linux_x86_64) ;;
    linux-arm64) tags=(manylinux2014_aarch64 manylinux_2_17_aarch64 manylinux_2_28_aarch64 linux_aarch64) ;;
    darwin-amd64) tags=(macosx_10_12_x86_64 macosx_10_13_x86_64 macosx_10_15_x86_64 macosx_11_0_x86_64) ;;
    darwin-arm64) tags=(macosx_11_0_arm64 macosx_12_0_arm64) ;;
    *) echo "unknown platform $platform (linux-amd64, linux-arm64, darwin-amd64, darwin-arm64)" >&2; exit 2 ;;
  esac
  out="$work/$platform"
  for version in "${pythons[@]}"; do
    "${pip[@]}" install --no-warn-conflicts --root-user-action=ignore --target "$out/lib/cp${version/./}" --only-binary=:all: --implementation cp \
      --python-version "$version" "${tags[@]/#/--platform=}" "$work"/wheel/modelreg-*.whl
  done
  # what every version installed alike (pure Python: botocore, kubernetes, ...) is kept once, in
  # lib/common, whole top-level packages only (a package split across two paths would not import)
  python3 - "$out/lib" "${pythons[@]/./}" <<'PY'
import hashlib, pathlib, shutil, sys
lib, versions = pathlib.Path(sys.argv[1]), [f"cp{v}" for v in sys.argv[2:]]
def digest(path):
    files = sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts) if path.is_dir() else [path]
    return hashlib.sha256(b"".join(str(f.relative_to(path.parent)).encode() + f.read_bytes() for f in files)).hexdigest()
(lib / "common").mkdir()
for entry in sorted((lib / versions[0]).iterdir()):
    copies = [lib / v / entry.name for v in versions]
    if all(c.exists() for c in copies) and len({digest(c) for c in copies}) == 1:
        shutil.move(str(entry), lib / "common" / entry.name)
        for c in copies[1:]:
            shutil.rmtree(c) if c.is_dir() else c.unlink()
PY
  for tool in kubectl-modelreg:main kubectl_complete-modelreg:complete; do
    cat > "$out/${tool%%:*}" <<SH
#!/usr/bin/env bash
here=\$(dirname "\$(readlink -f "\$0")")
version=\$(python3 -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")' 2>/dev/null || true)
if [ -z "\$version" ] || [ ! -d "\$here/lib/\$version" ]; then
  echo "kubectl-modelreg needs python3 ${pythons[0]} to ${pythons[-1]} on PATH (found: \$(python3 --version 2>&1 || echo none))" >&2
  exit 1
fi
PYTHONPATH="\$here/lib/\$version:\$here/lib/common" exec python3 -c 'import sys; from modelreg.cli.main import ${tool##*:}; sys.exit(${tool##*:}())' "\$@"
SH
    chmod +x "$out/${tool%%:*}"
  done
  tar -czf "$dist/kubectl-modelreg-$platform.tar.gz" -C "$out" .
  (cd "$dist" && sha256sum "kubectl-modelreg-$platform.tar.gz")
done
