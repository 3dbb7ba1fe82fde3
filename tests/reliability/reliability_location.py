"""The code location the fault tests run on the local platform.

Cheap jobs, so fifty runs fit the time budget: `tiny_job` prints a line to stdout and
stderr (something for the compute-log manager to upload) and waits as long as its run
config says. `slow_daily_job` is what the every-minute schedule starts; it outlasts a
tick, so the next tick finds it still going. The schedule is lakeport's own skipping
schedule (the one `lakehouse_schedule` is built with), not a copy; it comes from
lakeport.schedules, which does not import dagster-dbt: every run worker imports this
module, and fifty runs pay for that import fifty times.
"""

import sys
import time

import dagster as dg
from team_env import team_env_job

from lakeport.config import load_effective_platform
from lakeport.schedules import build_skipping_schedule

platform = load_effective_platform()
PROFILE = platform.dagster.run_launcher.default_profile


@dg.op(config_schema={"seconds": dg.Field(float, default_value=0.0)})
def say_and_wait(context) -> None:
    run_id = context.run_id
    print(f"reliability stdout of {run_id}", flush=True)
    print(f"reliability stderr of {run_id}", file=sys.stderr, flush=True)
    time.sleep(context.op_config["seconds"])
    context.log.info(f"waited {context.op_config['seconds']}s")


# One process per run (no step subprocess): the worker itself is the whole run.
@dg.job(executor_def=dg.in_process_executor)
def tiny_job():
    say_and_wait()


SCHEDULED_RUN_SECONDS = 100
DAILY = dg.DailyPartitionsDefinition(start_date="2026-01-01")


@dg.op
def outlast_a_tick(context) -> None:
    time.sleep(SCHEDULED_RUN_SECONDS)
    context.log.info(f"slept {SCHEDULED_RUN_SECONDS}s")


@dg.job(executor_def=dg.in_process_executor, partitions_def=DAILY)
def slow_daily_job():
    outlast_a_tick()


every_minute = build_skipping_schedule(
    "every_minute", "slow_daily_job", slow_daily_job, DAILY, "* * * * *", platform, PROFILE
)

defs = dg.Definitions(jobs=[tiny_job, slow_daily_job, team_env_job], schedules=[every_minute])
