"""`modelreg fetch`: put a proven artifact in a directory, its SHA-256 checked before it appears there.

    modelreg fetch fraud@production --to /models/fraud [-n ml] [--context C]
    modelreg fetch --from-env --to /models/fraud      # MODEL_URI, MODEL_SHA256, MODEL_VERSION_ID

Exit 0 once the proven bytes are at --to; otherwise 1 (2 for bad arguments) with one line on
stderr and nothing at --to. As an init container it makes a serving pod refuse unproven bytes.
"""

from __future__ import annotations

import argparse
import sys

from modelreg import client
from modelreg.cli.progress import Bar


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="modelreg fetch", description=__doc__.splitlines()[0])
    p.add_argument("reference", nargs="?", metavar="MODEL@STAGE|MODEL@VERSION")
    p.add_argument("--from-env", action="store_true", help="MODEL_URI, MODEL_SHA256 (and MODEL_VERSION_ID) instead")
    p.add_argument("--to", required=True, metavar="DIR", help="absent or empty directory (created)")
    p.add_argument(
        "--replace", action="store_true", help="replace DIR if it holds files, once the new bytes are proven"
    )
    p.add_argument(
        "--kubeconfig", help="path to the kubeconfig (default: $KUBECONFIG, ~/.kube/config, in a pod its own)"
    )
    p.add_argument("--context", help="kubeconfig context to use")
    p.add_argument("-n", "--namespace", help="namespace (default: the context's)")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if bool(args.reference) == args.from_env:
        p.error("give MODEL@STAGE (or MODEL@VERSION) or --from-env, not both")
    bar = Bar("fetching")
    try:
        if args.from_env:
            fetched = client.fetch_from_env(args.to, replace=args.replace, progress=bar.advance, started=bar.started)
            what = "MODEL_URI"
        else:
            resolved = client.resolve(args.reference, args.namespace, args.context, args.kubeconfig)
            what = f"{resolved.model} v{resolved.version}" + (f" ({resolved.stage})" if resolved.stage else "")
            fetched = client.fetch(resolved, args.to, replace=args.replace, progress=bar.advance, started=bar.started)
    except client.InvalidReference as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (client.Unresolvable, client.ClusterError, client.FetchError) as exc:
        bar.finish()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    bar.finish()
    print(f"fetched {what}: {fetched.files} file(s), {fetched.size} bytes, sha256 {fetched.sha256} to {fetched.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
