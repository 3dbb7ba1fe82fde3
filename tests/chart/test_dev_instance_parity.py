"""The chart's dagster.yaml and `lakeport dev`'s agree wherever Kubernetes and one machine
do not make them differ.

Both are built from the same settings here (the effective platform the chart renders), so a
difference is one of the two builders: templates/dagster/_instance.tpl and
lakeport.dev.instance_config.dagster_instance_config.
"""

import pytest
from chart_render import ENVIRONMENTS, dagster_yaml, effective_platform_text, render_env

from lakeport.config import parse_platform
from lakeport.dev.instance_config import LOCAL_RUN_LAUNCHER, dagster_instance_config

# The same in both, to the letter.
SAME = ("run_coordinator", "run_retries", "retention", "telemetry")
STORAGES = ("run_storage", "event_log_storage", "schedule_storage")


@pytest.fixture(scope="module", params=("local", *ENVIRONMENTS))
def instances(request, tmp_path_factory):
    """(the chart's dagster.yaml, lakeport dev's) for one platform file."""
    objects = render_env(request.param)
    platform = parse_platform(effective_platform_text(objects), f"{request.param} (rendered)")
    local = dagster_instance_config(platform, tmp_path_factory.mktemp("compute-logs"))
    return dagster_yaml(objects), local


def test_both_configure_the_same_sections(instances):
    chart, local = instances
    assert sorted(chart) == sorted(local)


@pytest.mark.parametrize("section", SAME)
def test_sections_that_do_not_depend_on_where_they_run_are_equal(instances, section):
    chart, local = instances
    assert chart[section] == local[section]


@pytest.mark.parametrize("section", STORAGES)
def test_storages_are_the_same_classes_on_the_same_database(instances, section):
    chart, local = instances
    assert _class(chart[section]) == _class(local[section])
    chart_db = dict(chart[section]["config"]["postgres_db"])
    # On purpose: the chart passes postgres.sslMode to the cluster's or the external
    # server; `lakeport dev` connects to the PostgreSQL it started itself on 127.0.0.1.
    assert set(chart_db.pop("params")) == {"sslmode"}
    assert chart_db == local[section]["config"]["postgres_db"]


def test_compute_logs_go_to_the_same_bucket_the_same_way(instances):
    chart, local = instances
    chart_logs, local_logs = chart["compute_logs"], local["compute_logs"]
    assert _class(chart_logs) == _class(local_logs)
    chart_config, local_config = dict(chart_logs["config"]), dict(local_logs["config"])
    # On purpose: each process writes its logs in its own directory before the upload (the
    # pod's computeLogs.localDir; under dev.dataDir on one machine).
    chart_config.pop("local_dir"), local_config.pop("local_dir")
    # The chart leaves out what S3ComputeLogManager defaults to without an endpoint
    # (endpoint_url None, use_ssl true); lakeport dev writes both.
    chart_config.setdefault("endpoint_url", None)
    chart_config.setdefault("use_ssl", True)
    assert chart_config == local_config


def test_run_monitoring_differs_only_in_resuming(instances):
    chart, local = instances
    chart_monitoring = dict(chart["run_monitoring"])
    local_monitoring = dict(local["run_monitoring"])
    # On purpose: K8sRunLauncher can resume a run whose pod died
    # (dagster.runMonitoring.maxResumeRunAttempts); a local worker that died cannot be
    # resumed, so lakeport dev always says 0.
    chart_monitoring.pop("max_resume_run_attempts")
    assert local_monitoring.pop("max_resume_run_attempts") == 0
    assert chart_monitoring == local_monitoring


def test_the_run_launcher_differs_on_purpose(instances):
    """Runs are Kubernetes Jobs in the chart and local processes on one machine; nothing of
    the two launchers' configs is shared (namespace, image, ServiceAccount vs cgroups)."""
    chart, local = instances
    assert _class(chart["run_launcher"]) == ("lakeport.run_launcher", "LakeportK8sRunLauncher")
    assert _class(local["run_launcher"]) == (
        LOCAL_RUN_LAUNCHER["module"], LOCAL_RUN_LAUNCHER["class"]
    )


def _class(section: dict) -> tuple[str, str]:
    return section["module"], section["class"]
