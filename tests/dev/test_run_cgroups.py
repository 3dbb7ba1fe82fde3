"""Run workers in a cgroup sized by their resource profile: over the limit, the kernel's OOM
killer ends the run, exactly as a pod over `limits.memory` is OOMKilled in the cluster.

Needs root on Linux (creating cgroups); CI runs as root, so these run there."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._core.launcher.base import LaunchRunContext

from lakeport.config import PLATFORM_FILE_ENV
from lakeport.dev.cgroups import create_run_cgroup
from lakeport.dev.run_launcher import CGROUP_TAG, WORKER_PID_TAG
from lakeport.profiles import PROFILE_TAG

MiB = 1 << 20

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0,
    reason="creating cgroups needs root on Linux",
)


def test_a_process_in_the_cgroup_sees_its_limit_and_is_oom_killed_over_it():
    cgroup = create_run_cgroup(f"t-{os.getpid()}", 128 * MiB, 0.5)
    try:
        # What lakeport's DuckDB settings are derived from inside the worker.
        seen = subprocess.run(
            cgroup.command([sys.executable, "-c",
                            "from lakeport.cgroup_limits import read_container_limits as r; "
                            "l = r(); print(int(l.memory.value), l.cpu.value)"]),
            capture_output=True, text=True, check=True,
        ).stdout.split()
        assert seen == [str(128 * MiB), "0.5"]
        over = subprocess.run(cgroup.command(
            [sys.executable, "-c", "held = b'x' * (512 << 20)"]
        ))
        assert over.returncode == -9
        assert cgroup.oom_kills() >= 1
    finally:
        assert cgroup.remove()
    assert not any(d.exists() for d in cgroup.directories)


@pytest.fixture
def instance(tmp_path, monkeypatch):
    platform_file = tmp_path / "platform.yaml"
    platform_file.write_text(textwrap.dedent(f"""
        resourceProfiles:
          tiny:
            requests: {{memory: 300Mi}}
            limits: {{memory: 300Mi, cpu: "1"}}
            spillVolumeSize: 1Gi
        dev:
          dataDir: {tmp_path / "data"}
    """))
    monkeypatch.setenv(PLATFORM_FILE_ENV, str(platform_file))
    # The worker command is `dagster api execute_run`, found on PATH as on a run pod.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(textwrap.dedent("""
        run_launcher:
          module: lakeport.dev.run_launcher
          class: LocalRunLauncher
          config: {cgroup_limits: true}
        telemetry: {enabled: false}
    """))
    with DagsterInstance.from_config(str(home)) as instance:
        yield instance


def _launch(instance, megabytes: int, profile: str, seconds: float = 0.0, wait: bool = True):
    recon = ReconstructableJob.for_file(
        str(Path(__file__).with_name("memory_hungry_job.py")), "memory_hungry_job"
    )
    run = instance.create_run_for_job(
        job_def=recon.get_definition(),
        job_code_origin=recon.get_python_origin(),
        run_config={"ops": {"hold_memory": {"config": {"megabytes": megabytes,
                                                        "seconds": seconds}}}},
        tags={PROFILE_TAG: profile},
    )
    instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    return _finished(instance, run.run_id) if wait else run


def _finished(instance, run_id):
    run = instance.get_run_by_id(run_id)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run.run_id)
        if run.is_finished and run.run_id not in instance.run_launcher._workers:
            return run
        time.sleep(0.5)
    raise AssertionError(f"run {run.run_id} did not finish: {run.status}")


def _messages(instance, run_id) -> list[str]:
    return [e.message or e.user_message for e in instance.all_logs(run_id)]


def test_a_run_within_its_profile_succeeds_in_its_cgroup(instance):
    run = _launch(instance, megabytes=20, profile="tiny")
    messages = _messages(instance, run.run_id)
    assert run.status == DagsterRunStatus.SUCCESS, messages
    assert "lakeport-run-" + run.run_id in run.tags[CGROUP_TAG]
    assert any("profile 'tiny' in cgroup" in m and "memory 300Mi" in m for m in messages)
    # The cgroup goes with the worker.
    assert not any(Path(d).exists() for d in run.tags[CGROUP_TAG].split(","))


def test_a_run_over_its_profile_memory_is_oom_killed_and_fails(instance):
    run = _launch(instance, megabytes=1024, profile="tiny")
    messages = _messages(instance, run.run_id)
    assert run.status == DagsterRunStatus.FAILURE, messages
    assert not Path(f"/proc/{run.tags[WORKER_PID_TAG]}").exists()
    failure = [m for m in messages if "OOM killer" in m]
    assert failure and "profile 'tiny'" in failure[0] and "300MiB" in failure[0], messages


def test_terminating_a_run_stops_its_worker_and_cancels_the_run(instance):
    run = _launch(instance, megabytes=1, profile="tiny", seconds=120, wait=False)
    deadline = time.monotonic() + 120
    while instance.get_run_by_id(run.run_id).status != DagsterRunStatus.STARTED:
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.5)
    started = instance.get_run_by_id(run.run_id)
    health = instance.run_launcher.check_run_worker_health(started)
    assert health.status.value == "RUNNING", health
    # What the UI's Terminate button calls (in the webserver, a different process).
    assert instance.run_launcher.terminate(run.run_id)
    run = _finished(instance, run.run_id)
    assert run.status == DagsterRunStatus.CANCELED
    assert not Path(f"/proc/{run.tags[WORKER_PID_TAG]}").exists()


def test_concurrent_runs_get_their_own_scratch_dir_removed_afterwards(instance):
    """The local counterpart of a run pod's spill volume: no shared DuckDB file or spill dir."""
    runs = [_launch(instance, megabytes=1, profile="tiny", seconds=3, wait=False) for _ in "ab"]
    scratch_dirs = []
    for run in runs:
        finished = _finished(instance, run.run_id)
        messages = _messages(instance, run.run_id)
        assert finished.status == DagsterRunStatus.SUCCESS, messages
        said = [m.removeprefix("scratch dir ") for m in messages if m.startswith("scratch dir ")]
        assert len(said) == 1, messages
        scratch = Path(said[0])
        assert scratch.parts[-2:] == ("runs", run.run_id)
        assert not scratch.exists(), "a run's scratch dir must go with the run"
        scratch_dirs.append(scratch)
    assert scratch_dirs[0] != scratch_dirs[1]
