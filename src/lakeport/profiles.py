"""Resource profiles for runs: which one a run needs, and the run tags that put it there
(the one place profile numbers become pod config). The profiles themselves are settings,
`lakeport.platform.ResourceProfile`.

A model's `meta.lakeport.profile` or its group's profile names what its runs need. One
pod runs all the models a run selects, so the run takes the largest profile any of them
asks for (the default profile for those that ask for none): `largest_profile`.

The chart's instance ConfigMap carries the default profile as the launcher's
`run_k8s_config` (rendered from the same `resourceProfiles` values); a run that names
another profile carries `dagster-k8s/config` built here. The merge is SHALLOW so the
run's container resources, volume mounts and volumes replace the default's instead of
being appended next to them (two `spill` volumes would be an invalid pod).
"""

import json
from collections.abc import Iterable

from lakeport.platform import Platform, Scheduling
from lakeport.quantities import cpu_cores, memory_bytes

K8S_CONFIG_TAG = "dagster-k8s/config"
PROFILE_TAG = "lakeport/profile"
SPILL_VOLUME = "duckdb-spill"
SPILL_MOUNT_PATH = "/var/lib/lakeport/spill"
PLATFORM_VOLUME = "lakeport-platform"
PLATFORM_MOUNT_PATH = "/etc/lakeport"


def run_k8s_config(platform: Platform, profile_name: str | None = None) -> dict:
    """The dagster-k8s `run_k8s_config` for one profile (snake_case, as dagster-k8s takes it)."""
    profile = platform.profile(profile_name)
    resources = {
        kind: {k: str(v) for k, v in getattr(profile, kind).model_dump().items() if v is not None}
        for kind in ("requests", "limits")
    }
    mounts = [{"name": SPILL_VOLUME, "mount_path": SPILL_MOUNT_PATH}]
    volumes = [
        {"name": SPILL_VOLUME, "empty_dir": {"size_limit": str(profile.spill_volume_size)}}
    ]
    config_map = platform.dagster.run_launcher.platform_config_map
    if config_map:
        # SHALLOW replaces the launcher's volumes and mounts with these, so the run pod's
        # settings file (the chart's platform ConfigMap) must be part of every profile.
        mounts.append(
            {"name": PLATFORM_VOLUME, "mount_path": PLATFORM_MOUNT_PATH, "read_only": True}
        )
        volumes.append({"name": PLATFORM_VOLUME, "config_map": {"name": config_map}})
    return {
        "container_config": {"resources": resources, "volume_mounts": mounts},
        "pod_spec_config": {"volumes": volumes, **pod_scheduling(profile.scheduling)},
        "pod_template_spec_metadata": {
            "annotations": dict(profile.scheduling.pod_annotations),
            "labels": {
                **profile.scheduling.pod_labels,
                **platform.dagster.run_launcher.run_pod_labels,
            },
        },
        "merge_behavior": "SHALLOW",
    }


def pod_scheduling(scheduling: Scheduling) -> dict:
    """The profile's scheduling keys of a pod spec, every one of them even when empty: the
    SHALLOW merge replaces a key the run tag sets and keeps one it leaves out, so a `large`
    run must say "no tolerations" rather than inherit the default profile's."""
    return {
        "node_selector": dict(scheduling.node_selector),
        "tolerations": [t.model_dump(exclude_none=True) for t in scheduling.tolerations],
        # dagster-k8s turns the nested camelCase keys into the client's snake_case
        # (dagster_k8s.models.k8s_snake_case_dict), as in any pod spec it is given.
        "affinity": scheduling.affinity,
        "priority_class_name": scheduling.priority_class_name,
        "image_pull_secrets": [{"name": name} for name in scheduling.image_pull_secrets],
    }


def profile_tags(platform: Platform, profile_name: str | None = None) -> dict[str, str]:
    """Run tags that put a run on the named profile (default: the platform's default)."""
    name = profile_name or platform.dagster.run_launcher.default_profile
    return {
        PROFILE_TAG: name,
        K8S_CONFIG_TAG: json.dumps(run_k8s_config(platform, name), sort_keys=True),
    }


def largest_profile(platform: Platform, names: Iterable[str | None]) -> str:
    """The largest (memory, then CPU limit) of the profiles named; None stands for the
    default, and no names at all for the default too."""
    default = platform.dagster.run_launcher.default_profile
    candidates = {name or default for name in names} or {default}

    def size(name: str) -> tuple[int, float]:
        limits = platform.profile(name).limits
        return memory_bytes(limits.memory), cpu_cores(limits.cpu) if limits.cpu else 0.0

    return max(sorted(candidates), key=size)
