"""Dagster's K8sRunLauncher, with run failures that say when the kubelet OOMKilled the run.

dagster-k8s 0.29 reports a run pod killed for going over its memory limit as "K8s job
failed" (dagster_k8s/launcher.py, check_run_worker_health). The run monitor marks such a
run failed with that text followed by the launcher's debug info, and a run whose pod died
before it started with its start timeout, also followed by the debug info
(dagster/_daemon/monitoring/run_monitoring.py: monitor_started_run, monitor_starting_run).
So the debug info is the one place for it: a container of the run that ended `OOMKilled`
puts first a sentence naming the pod, its memory limit and the run's resource profile,
which is what the user has to change.
"""

from collections.abc import Iterable

from dagster._core.storage.dagster_run import DagsterRun
from dagster_k8s import K8sRunLauncher

from lakeport.profiles import PROFILE_TAG

# dagster-k8s labels every run pod with its run id (dagster_k8s/job.py).
RUN_ID_LABEL = "dagster/run-id"


def oom_killed_message(pods: Iterable, profile: str | None) -> str | None:
    """Why the run failed, in words, when one of its containers was OOMKilled; else None.

    `pods` are kubernetes-client V1Pod objects of one run."""
    for pod in pods:
        statuses = (pod.status.container_statuses or []) if pod.status else []
        for status in statuses:
            terminated = status.state.terminated if status.state else None
            if terminated is None and status.last_state:
                terminated = status.last_state.terminated
            if terminated is None or terminated.reason != "OOMKilled":
                continue
            limit = _memory_limit(pod, status.name)
            named = f"resource profile '{profile}'" if profile else "the run's resource profile"
            return (
                f"The kubelet OOMKilled container '{status.name}' of run pod "
                f"{pod.metadata.name}: it went over its memory limit {limit or '(none set)'} "
                f"from {named} (tag {PROFILE_TAG}). Give the job, asset or dbt model a larger "
                "profile, or make the run hold less in memory."
            )
    return None


def _memory_limit(pod, container_name: str) -> str | None:
    for container in pod.spec.containers:
        if container.name == container_name and container.resources and container.resources.limits:
            return container.resources.limits.get("memory")
    return None


class LakeportK8sRunLauncher(K8sRunLauncher):
    """K8sRunLauncher whose debug info for a failed run names an OOMKill and the profile."""

    def get_run_worker_debug_info(
        self, run: DagsterRun, include_container_logs: bool | None = True
    ) -> str | None:
        info = super().get_run_worker_debug_info(run, include_container_logs)
        namespace = self.get_container_context_for_run(run).namespace
        try:
            pods = self._api_client.core_api.list_namespaced_pod(
                namespace, label_selector=f"{RUN_ID_LABEL}={run.run_id}"
            ).items
        except Exception:  # the pods are read only for a better message
            return info
        message = oom_killed_message(pods, run.tags.get(PROFILE_TAG))
        return info if message is None else f"{message}\n{info or ''}"
