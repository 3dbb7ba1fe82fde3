"""The second code location of the fault platform: another team beside `reliability`,
from the same platform file, with its own env. Its two assets ask for the `large` profile
by their tags alone (as dbt models do through meta.lakeport.profile); runs of them that
nobody tagged (an asset backfill, Dagster's own automation sensor) must still get it."""

import dagster as dg
from team_env import team_env_job

from lakeport.profiles import PROFILE_TAG

DAILY = dg.DailyPartitionsDefinition(start_date="2026-11-01", end_date="2026-11-04")


@dg.asset(partitions_def=DAILY, tags={PROFILE_TAG: "large"})
def big_daily(context: dg.AssetExecutionContext) -> None:
    context.log.info(f"built {context.partition_key}")


# Requested whenever it is missing and not being built: on the sensor's first tick here.
WHILE_MISSING = dg.AutomationCondition.missing() & ~dg.AutomationCondition.in_progress()


@dg.asset(tags={PROFILE_TAG: "large"}, automation_condition=WHILE_MISSING)
def big_automated(context: dg.AssetExecutionContext) -> None:
    context.log.info("built by automation")


# Dagster's own automation sensor, with no run tags of lakeport's.
team_automation = dg.AutomationConditionSensorDefinition(
    "team_automation", target=dg.AssetSelection.assets(big_automated),
    default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=5,
)

defs = dg.Definitions(
    assets=[big_daily, big_automated], jobs=[team_env_job], sensors=[team_automation]
)
