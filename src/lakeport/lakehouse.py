"""A dbt project plus platform.yaml -> the Definitions of a lakeport code location.

Assets (dbt models, their tests as asset checks, and the Python assets the project's
sources read, e.g. a bronze layer written with lakeport.lakehouse_io), the job that
builds them all, a schedule that will not start a run while the last one is still going, declarative
automation sensors (one per resource profile, so automated runs carry their profile's
pod resources) and the run-failure webhook.
"""

import gc
from collections.abc import Mapping, Sequence
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtProject

from lakeport.dbt_assets import DEFAULT_RETRY_POLICY, LakeportDbtCliResource, build_dbt_assets
from lakeport.dbt_manifest import dbt_executable, load_manifest
from lakeport.lakehouse_io import IcebergTables
from lakeport.notifications import run_failure_webhook
from lakeport.platform import Platform
from lakeport.profiles import PROFILE_TAG, largest_profile, profile_tags
from lakeport.schedules import build_skipping_schedule
from lakeport.translator import LakeportDbtTranslator


def build_lakehouse_definitions(
    project_dir: str | Path,
    platform: Platform,
    *,
    partitions_start_date: str,
    job_name: str = "lakehouse_job",
    schedule_name: str = "lakehouse_schedule",
    schedule_cron: str = "0 4 * * *",
    job_profile: str | None = None,
    group_profiles: Mapping[str, str] | None = None,
    retry_policy: dg.RetryPolicy | None = DEFAULT_RETRY_POLICY,
    python_assets: Sequence[dg.AssetsDefinition] = (),
    translator: LakeportDbtTranslator | None = None,
) -> dg.Definitions:
    """A code location's Definitions, built from one dbt project on one platform.

    What it holds: the dbt models as assets (daily-partitioned ones in a second op) with
    their tests as asset checks; one job of them all (`job_name`, on `job_profile` or the
    largest profile its assets ask for) and its daily schedule (`schedule_name`,
    `schedule_cron`); the automation sensors of `meta.lakeport.cron`; the run-failure
    webhook; and the resources `dbt` and `lakehouse`.

    - `project_dir` holds dbt_project.yml and a prepared manifest (`lakeport prepare-dbt`).
    - `partitions_start_date` (YYYY-MM-DD): the first day of the daily-partitioned models.
    - `group_profiles`: dbt group (layer) -> resource profile, for models that name none.
    - `retry_policy`: of every dbt op; None turns retries off.
    - `python_assets` join the same job, lineage and automation; they get the resource
      `lakehouse` (lakeport.lakehouse_io.IcebergTables) to read and write Iceberg tables.
    - `translator` replaces lakeport's own (lakeport.component passes one that applies a
      component's translation); lakeport's is built with `group_profiles`.

    Raises what the manifest or the platform's profiles get wrong (ValueError naming the
    model and key)."""
    project_dir = Path(project_dir).resolve()
    manifest = load_manifest(project_dir)
    # The manifest (a million objects for 1,000 models) lives as long as the code location
    # and holds no garbage: frozen out of the cyclic collector's sight, it is no longer
    # walked by every full collection while the definitions are built and after (a second
    # of a 1,000-model load here, bench/codelocation_load.py). Whatever exists before it
    # is frozen with it; a code location made once per process loses nothing by that.
    gc.freeze()
    project = DbtProject(project_dir=project_dir, profiles_dir=project_dir)
    translator = translator or LakeportDbtTranslator(platform, group_profiles)
    partitions_def = dg.DailyPartitionsDefinition(start_date=partitions_start_date)
    assets = build_dbt_assets(
        project=project,
        manifest=manifest,
        platform=platform,
        translator=translator,
        partitions_def=partitions_def,
        retry_policy=retry_policy,
    )
    assets = [*python_assets, *assets]
    asset_profiles = {
        key: spec.tags.get(PROFILE_TAG) for a in assets for key, spec in _specs(a).items()
    }

    profile = job_profile or largest_profile(platform, asset_profiles.values())
    # A project without a daily-partitioned model has an unpartitioned job: Dagster refuses
    # a partitioned job none of whose assets share its partitions.
    partitioned = any(a.partitions_def is not None for a in assets)
    job = dg.define_asset_job(
        job_name,
        selection=dg.AssetSelection.assets(*asset_profiles),
        partitions_def=partitions_def if partitioned else None,
        tags=profile_tags(platform, profile),
        description=f"Builds every dbt model and runs every dbt test; profile {profile!r}.",
    )
    schedule = build_skipping_schedule(
        schedule_name, job_name, job, partitions_def if partitioned else None, schedule_cron,
        platform, profile,
    )
    return dg.Definitions(
        assets=assets,
        jobs=[job],
        schedules=[schedule],
        sensors=[*automation_sensors(platform, asset_profiles), run_failure_webhook],
        resources={
            "dbt": LakeportDbtCliResource(
                project_dir=str(project_dir),
                profiles_dir=str(project_dir),
                dbt_executable=dbt_executable(),
            ),
            "lakehouse": IcebergTables(platform),
        },
    )


def automation_sensors(
    platform: Platform, asset_profiles: Mapping[dg.AssetKey, str | None]
) -> list[dg.AutomationConditionSensorDefinition]:
    """One declarative-automation sensor per profile, tagging its runs with that profile."""
    default = platform.dagster.run_launcher.default_profile
    by_profile: dict[str, list[dg.AssetKey]] = {}
    for key, name in asset_profiles.items():
        by_profile.setdefault(name or default, []).append(key)
    return [
        dg.AutomationConditionSensorDefinition(
            f"lakeport_automation_{name}",
            target=dg.AssetSelection.assets(*keys),
            run_tags=profile_tags(platform, name),
            # Off until an operator turns it on: a fresh deployment must not start runs
            # by itself.
            default_status=dg.DefaultSensorStatus.STOPPED,
        )
        for name, keys in sorted(by_profile.items())
    ]


def _specs(assets_def: dg.AssetsDefinition) -> dict[dg.AssetKey, dg.AssetSpec]:
    return {spec.key: spec for spec in assets_def.specs}
