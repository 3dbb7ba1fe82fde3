"""Schedules of a lakeport code location, kept apart from the dbt factory.

A run worker imports its whole code location; a location that only needs a schedule
(or the test code location of tests/reliability) should not pay for importing dagster-dbt
and pyiceberg on every run.
"""

import dagster as dg

from lakeport.platform import Platform
from lakeport.profiles import profile_tags

ACTIVE_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def build_skipping_schedule(
    name: str,
    job_name: str,
    job,
    partitions_def: dg.TimeWindowPartitionsDefinition | None,
    cron: str,
    platform: Platform,
    profile: str,
) -> dg.ScheduleDefinition:
    """Requests a run on `cron` (of the newest daily partition, for a partitioned job),
    unless a run of the job is active."""

    @dg.schedule(name=name, job=job, cron_schedule=cron, execution_timezone="UTC")
    def skipping_schedule(context: dg.ScheduleEvaluationContext):
        active = context.instance.get_runs(
            filters=dg.RunsFilter(job_name=job_name, statuses=ACTIVE_STATUSES), limit=1
        )
        if active:
            run = active[0]
            return dg.SkipReason(
                f"run {run.run_id} of {job_name} is still {run.status.value}; not starting another"
            )
        if partitions_def is None:
            return dg.RunRequest(tags=profile_tags(platform, profile))
        with dg.partition_loading_context(effective_dt=context.scheduled_execution_time):
            partition_key = partitions_def.get_last_partition_key()
        return dg.RunRequest(partition_key=partition_key, tags=profile_tags(platform, profile))

    return skipping_schedule
