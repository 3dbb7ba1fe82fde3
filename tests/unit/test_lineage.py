"""lakeport.lineage without a run: the file transport writes real events, and a transport
that cannot deliver warns once and never raises."""

import json
import socket
import uuid

import pytest

from lakeport.config import parse_platform
from lakeport.credentials import LINEAGE_TOKEN_ENV
from lakeport.iceberg_publish import Published
from lakeport.lineage import RunLineage, commit_lineage

RUN_ID = str(uuid.uuid4())


class Log:
    def __init__(self):
        self.warnings: list[str] = []

    def warning(self, message):
        self.warnings.append(message)


def _lineage(transport: str, log: Log) -> RunLineage:
    platform = parse_platform(f"catalog: {{type: sql}}\nlineage: {{transport: {transport}}}\n")
    return RunLineage(platform, RUN_ID, "lakehouse_job", log)


def _closed_port() -> int:
    """A port nothing listens on: bound once, then let go."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _published(**overrides) -> Published:
    values = dict(identifier="marts.orders", row_count=3, snapshot_id=42,
                  metadata_location="s3://w/m.json", operation="overwrite",
                  fields=(("id", "long"), ("amount", "decimal(18, 2)")))
    return Published(**{**values, **overrides})


def test_off_by_default_sends_nothing():
    log = Log()
    lineage = RunLineage(parse_platform(""), RUN_ID, "job", log)
    assert not lineage.enabled
    assert commit_lineage(lineage, "marts.orders", _published) == _published()
    assert log.warnings == []


def test_a_commit_is_a_job_run_written_to_the_file(tmp_path):
    events_file = tmp_path / "lineage.jsonl"
    log = Log()
    lineage = _lineage(f"{{type: file, logFilePath: {events_file}}}", log)
    assert commit_lineage(lineage, "marts.orders", _published).snapshot_id == 42
    start, complete = [json.loads(line) for line in events_file.read_text().splitlines()]
    assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
    assert start["run"]["runId"] == complete["run"]["runId"] != RUN_ID
    assert complete["job"] == start["job"]
    assert complete["job"]["name"] == "marts.orders.iceberg_commit"
    assert complete["run"]["facets"]["parent"]["run"]["runId"] == RUN_ID
    assert complete["run"]["facets"]["parent"]["job"]["name"] == "lakehouse_job"
    (output,) = complete["outputs"]
    assert (output["namespace"], output["name"]) == ("iceberg://lakeport", "marts.orders")
    assert [(f["name"], f["type"]) for f in output["facets"]["schema"]["fields"]] == [
        ("id", "long"), ("amount", "decimal(18, 2)")]
    assert output["facets"]["version"]["datasetVersion"] == "42"
    assert output["facets"]["catalog"]["warehouseUri"] == "s3://lakeport-warehouse/"
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == 3
    assert log.warnings == []


def test_a_failed_commit_sends_fail_with_the_error_and_raises_it(tmp_path):
    events_file = tmp_path / "lineage.jsonl"
    lineage = _lineage(f"{{type: file, logFilePath: {events_file}}}", Log())

    def write():
        raise RuntimeError("commit lost to a concurrent writer")

    with pytest.raises(RuntimeError, match="concurrent writer"):
        commit_lineage(lineage, "marts.orders", write)
    start, fail = [json.loads(line) for line in events_file.read_text().splitlines()]
    assert fail["eventType"] == "FAIL"
    assert fail["outputs"] == []
    assert "concurrent writer" in fail["run"]["facets"]["errorMessage"]["message"]


def test_an_unwritable_file_warns_once_and_the_write_goes_on(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    log = Log()
    lineage = _lineage(f"{{type: file, logFilePath: {blocker}/lineage.jsonl}}", log)
    for _ in range(3):
        assert commit_lineage(lineage, "marts.orders", _published).row_count == 3
    (warning,) = log.warnings
    assert f"file {blocker}/lineage.jsonl" in warning
    assert "sends no more OpenLineage events" in warning
    assert not lineage.enabled


def test_a_token_secret_missing_from_the_environment_is_a_warning(monkeypatch):
    monkeypatch.delenv(LINEAGE_TOKEN_ENV, raising=False)
    log = Log()
    url = f"http://127.0.0.1:{_closed_port()}"
    transport = f"{{type: http, url: '{url}', tokenSecret: {{secretName: ol, key: t}}}}"
    lineage = _lineage(transport, log)
    commit_lineage(lineage, "marts.orders", _published)
    (warning,) = log.warnings
    assert LINEAGE_TOKEN_ENV in warning and f"{url}/api/v1/lineage" in warning


def test_a_refusing_endpoint_is_one_warning_without_the_token(monkeypatch):
    token = "tok-3c0ffee-never-logged"
    monkeypatch.setenv(LINEAGE_TOKEN_ENV, token)
    log = Log()
    lineage = _lineage(
        f"{{type: http, url: 'http://127.0.0.1:{_closed_port()}', timeoutSeconds: 1, "
        "tokenSecret: {secretName: ol, key: token}}", log
    )
    for _ in range(2):
        commit_lineage(lineage, "marts.orders", _published)
    (warning,) = log.warnings
    assert "ConnectionError" in warning
    assert "START event of job marts.orders.iceberg_commit" in warning
    assert token not in warning
