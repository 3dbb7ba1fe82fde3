"""When each kind of dbt model is rebuilt by declarative automation.

Views are cheap and only as fresh as what they select from, so they follow their
upstreams and their own code. Tables cost a full rebuild and run on a cron, never while a
run of them is still going. Partitioned incremental models do the same per daily
partition: the cron tick requests the newest day, not the whole history.
"""

import dagster as dg

DEFAULT_TABLE_CRON = "0 3 * * *"


def view_condition() -> dg.AutomationCondition:
    return (
        dg.AutomationCondition.eager()
        | (dg.AutomationCondition.code_version_changed() & ~dg.AutomationCondition.in_progress())
    ).with_label("view: on upstream update or code change")


def table_condition(cron: str = DEFAULT_TABLE_CRON) -> dg.AutomationCondition:
    return (
        dg.AutomationCondition.on_cron(cron) & ~dg.AutomationCondition.in_progress()
    ).with_label(f"table: on cron {cron!r}, not while in progress")


def partition_condition(cron: str = DEFAULT_TABLE_CRON) -> dg.AutomationCondition:
    # on_cron targets the latest time partition; in_progress() is judged per partition.
    return (
        dg.AutomationCondition.on_cron(cron) & ~dg.AutomationCondition.in_progress()
    ).with_label(f"partition: newest day on cron {cron!r}, not while in progress")


def condition_for(materialized: str, partitioned: bool, cron: str | None) -> dg.AutomationCondition:
    cron = cron or DEFAULT_TABLE_CRON
    if partitioned:
        return partition_condition(cron)
    if materialized in ("view", "ephemeral"):
        return view_condition()
    return table_condition(cron)
