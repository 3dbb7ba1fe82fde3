"""The run launcher's OOMKill message, over kubernetes-client pod objects as the API returns
them, and the seams of dagster-k8s it builds on. The kubelet's real OOMKill of a run pod is
tests/e2e/test_run_pods.py on the local cluster."""

import inspect

from dagster_k8s import K8sRunLauncher
from dagster_k8s.client import DagsterKubernetesClient
from kubernetes import client

from lakeport.run_launcher import LakeportK8sRunLauncher, oom_killed_message


def _pod(reason: str | None, *, last: bool = False, limit: str | None = "160Mi") -> client.V1Pod:
    terminated = client.V1ContainerStateTerminated(exit_code=137, reason=reason)
    state = client.V1ContainerState(terminated=None if last else terminated)
    last_state = client.V1ContainerState(terminated=terminated if last else None)
    resources = client.V1ResourceRequirements(limits={"memory": limit} if limit else None)
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name="dagster-run-abc-x1"),
        spec=client.V1PodSpec(
            containers=[client.V1Container(name="dagster", image="i", resources=resources)]
        ),
        status=client.V1PodStatus(container_statuses=[client.V1ContainerStatus(
            name="dagster", image="i", image_id="", ready=False, restart_count=0,
            state=state, last_state=last_state,
        )]),
    )


def test_an_oomkilled_run_pod_is_named_with_its_limit_and_profile():
    message = oom_killed_message([_pod("OOMKilled")], "tiny")
    assert "OOMKilled" in message and "dagster-run-abc-x1" in message
    assert "memory limit 160Mi" in message and "resource profile 'tiny'" in message


def test_an_oomkill_in_the_last_state_counts_too():
    assert "OOMKilled" in oom_killed_message([_pod("OOMKilled", last=True)], "transform")


def test_other_failures_and_pods_without_status_give_no_message():
    assert oom_killed_message([_pod("Error")], "transform") is None
    assert oom_killed_message([client.V1Pod(metadata=client.V1ObjectMeta(name="p"))], "t") is None
    assert oom_killed_message([], "transform") is None


def test_a_run_without_a_profile_tag_or_a_pod_without_a_limit_still_gets_words():
    message = oom_killed_message([_pod("OOMKilled", limit=None)], None)
    assert "(none set)" in message and "the run's resource profile" in message


def test_the_dagster_k8s_seams_it_overrides_and_reads_are_there():
    # get_run_worker_debug_info(run, include_container_logs) is what the run monitor appends
    # to a failed run's message; the pods are listed through DagsterKubernetesClient.core_api.
    assert issubclass(LakeportK8sRunLauncher, K8sRunLauncher)
    assert list(inspect.signature(K8sRunLauncher.get_run_worker_debug_info).parameters) == [
        "self", "run", "include_container_logs",
    ]
    assert "core_api" in inspect.signature(DagsterKubernetesClient.__init__).parameters
