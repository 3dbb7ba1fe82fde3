"""checkov over the rendered manifests: only the findings listed in checkov-skips.yaml."""

import fnmatch
import json
import subprocess
from pathlib import Path

import pytest
import yaml
from chart_render import RENDERED_ENVIRONMENTS, ROOT, platform_file, render_text

CHECKOV = ROOT / ".venv-checkov/bin/checkov"
SKIPS = yaml.safe_load((Path(__file__).parent / "checkov-skips.yaml").read_text())


def _failed(manifest_dir: Path) -> list[tuple[str, str]]:
    assert CHECKOV.exists(), f"{CHECKOV} is missing: run `make install`"
    result = subprocess.run(
        [str(CHECKOV), "-d", str(manifest_dir), "--framework", "kubernetes",
         "--skip-download", "--compact", "--quiet", "-o", "json"],
        capture_output=True, text=True,
    )
    # checkov exits 1 when checks fail; anything else (or no JSON) is a broken run.
    assert result.returncode in (0, 1), result.stderr[-2000:]
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert sum(r["summary"]["resource_count"] for r in reports) > 20, "checkov saw nothing"
    failed = []
    for report in reports:
        for check in report["results"]["failed_checks"]:
            kind, _namespace, name = check["resource"].split(".", 2)
            failed.append((check["check_id"], f"{kind}/{name}"))
    return failed


def _allowed(check_id: str, resource: str) -> dict | None:
    for skip in SKIPS:
        if skip["check"] == check_id and any(
            fnmatch.fnmatchcase(resource, pattern) for pattern in skip["resources"]
        ):
            return skip
    return None


# A control object scanned in the same run: the gate must be able to fail, so a
# privileged pod has to be reported (and is then left out of the chart's findings).
CONTROL = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "control-privileged", "namespace": "lakeport"},
    "spec": {"containers": [{"name": "c", "image": "busybox:1.36",
                             "securityContext": {"privileged": True}}]},
}
CONTROL_ID = "Pod/control-privileged"


@pytest.fixture(scope="module")
def all_findings(tmp_path_factory):
    out = tmp_path_factory.mktemp("manifests")
    for env in RENDERED_ENVIRONMENTS:
        (out / f"{env}.yaml").write_text(render_text(str(platform_file(env))))
    (out / "control.yaml").write_text(yaml.safe_dump(CONTROL))
    return _failed(out)


@pytest.fixture(scope="module")
def findings(all_findings):
    return [f for f in all_findings if f[1] != CONTROL_ID]


def test_skips_have_reasons():
    for skip in SKIPS:
        assert skip["check"].startswith("CKV"), skip
        assert len(skip["reason"].split()) >= 8, f"{skip['check']}: give a real reason"
        assert skip["resources"], skip


def test_no_finding_outside_the_written_skips(findings):
    unexplained = sorted({f for f in findings if _allowed(*f) is None})
    assert unexplained == []


def test_every_skip_is_still_needed(findings):
    used = {(s["check"], p) for s in SKIPS for p in s["resources"]
            if any(c == s["check"] and fnmatch.fnmatchcase(r, p) for c, r in findings)}
    stale = [(s["check"], p) for s in SKIPS for p in s["resources"] if (s["check"], p) not in used]
    assert stale == []


def test_checkov_does_flag_an_insecure_pod(all_findings):
    assert ("CKV_K8S_16", CONTROL_ID) in all_findings  # privileged container
