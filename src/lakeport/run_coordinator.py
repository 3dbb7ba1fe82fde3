"""The run queue, with every run's resource profile decided as it is submitted.

A dbt model's `meta.lakeport.profile` (or its group's profile) becomes an *asset* tag
(lakeport.translator), and Dagster never turns asset tags into run tags. So a run that
lakeport's own job or schedule did not start (the UI's "Materialize", an asset backfill,
a sensor, declarative automation, the GraphQL API) would carry no profile and run in a
pod of the default profile, with DuckDB sized to it.

Every run, whoever starts it, reaches the run coordinator: `DagsterInstance.submit_run`
calls `RunCoordinator.submit_run` before the run is queued (dagster 1.13.27,
_core/instance/methods/run_launcher_methods.py; the UI, GraphQL, the schedule, sensor,
backfill and auto-retry daemons all go through it). Here the coordinator, Dagster's
QueuedRunCoordinator otherwise, adds the run tags of the largest profile the run's assets
ask for (`lakeport.profiles.largest_profile`), read from the code location's asset graph
that the webserver and daemon already hold. Then:
- the launcher puts the run in that profile's pod (K8sRunLauncher reads the
  `dagster-k8s/config` tag) or cgroup (`lakeport dev`'s LocalRunLauncher);
- the run worker derives DuckDB's settings from that profile;
- the queue's tag concurrency limits can count `lakeport/profile` (e.g. one `large` run
  at a time), since the tag exists while the run waits.

A run that names its profile already keeps it; a `dagster-k8s/config` tag without a
profile is the user's own pod config and is left alone. A profile the run's code location
may not use fails the submission with a message naming location, profile and the allowed
ones.
"""

from collections.abc import Iterable

from dagster import AssetKey, DagsterRun
from dagster._core.run_coordinator import QueuedRunCoordinator, SubmitRunContext

from lakeport.platform import Platform
from lakeport.profiles import K8S_CONFIG_TAG, PROFILE_TAG, largest_profile, profile_tags


class ProfileNotAllowedError(ValueError):
    """The run's profile is not among those its code location may use."""


class LakeportRunCoordinator(QueuedRunCoordinator):
    """QueuedRunCoordinator that tags each submitted run with its resource profile."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._platform: Platform | None = None

    def _effective_platform(self) -> Platform:
        # Loaded on first use: the webserver and daemon have the platform file mounted
        # (LAKEPORT_PLATFORM_FILE), but tools that only read the instance need not.
        if self._platform is None:
            from lakeport.config import load_effective_platform

            self._platform = load_effective_platform()
        return self._platform

    def submit_run(self, context: SubmitRunContext) -> DagsterRun:
        run = context.dagster_run
        tags = run_profile_tags(self._effective_platform(), run, _asset_tags(context))
        if tags:
            self._instance.add_run_tags(run.run_id, tags)
            run = self._instance.get_run_by_id(run.run_id)
            context = context._replace(dagster_run=run)
        return super().submit_run(context)


def run_profile_tags(
    platform: Platform, run: DagsterRun, asset_tags: "AssetTagLookup"
) -> dict[str, str]:
    """The tags to add to `run` so it executes under its profile ({} if it has them)."""
    if K8S_CONFIG_TAG in run.tags and PROFILE_TAG not in run.tags:
        return {}
    name = run.tags.get(PROFILE_TAG)
    if name is None:
        keys = _materialised_assets(run, asset_tags)
        name = largest_profile(platform, (asset_tags.profile(key) for key in keys))
    platform.profile(name)  # an unknown name fails here, naming the ones there are
    location = run.remote_job_origin.location_name if run.remote_job_origin else None
    allowed = platform.allowed_profiles(location)
    if allowed is not None and name not in allowed:
        raise ProfileNotAllowedError(
            f"run {run.run_id} of code location {location!r} asks for resource profile "
            f"{name!r}, which codeLocations[{location}].profiles in platform.yaml does not "
            f"allow (allowed: {', '.join(allowed)})"
        )
    wanted = profile_tags(platform, name)
    return {k: v for k, v in wanted.items() if run.tags.get(k) != v}


class AssetTagLookup:
    """The asset tags of one code location's repository, as the workspace holds them."""

    def __init__(self, repository=None):
        self._repository = repository

    def profile(self, key: AssetKey) -> str | None:
        snap = self._repository.get_asset_node_snap(key) if self._repository else None
        return (snap.tags or {}).get(PROFILE_TAG) if snap else None

    def keys_in_job(self, job_name: str) -> Iterable[AssetKey]:
        return self._repository.get_asset_keys_in_job(job_name) if self._repository else ()


def _asset_tags(context: SubmitRunContext) -> AssetTagLookup:
    origin = context.dagster_run.remote_job_origin
    if origin is None or context.workspace is None:
        return AssetTagLookup()
    location = context.workspace.get_code_location(origin.location_name)
    return AssetTagLookup(location.get_repository(origin.repository_origin.repository_name))


def _materialised_assets(run: DagsterRun, asset_tags: AssetTagLookup) -> set[AssetKey]:
    """What the run materialises or checks: its selection, else all of its job's assets."""
    keys = set(run.asset_selection or ())
    keys |= {check.asset_key for check in run.asset_check_selection or ()}
    if not keys and run.asset_selection is None:
        keys = set(asset_tags.keys_in_job(run.job_name))
    return keys
