"""A job both test code locations serve: it logs which team's settings its run sees, so a
test can tell that each location's runs get that location's env and no other's."""

import os

import dagster as dg

TEAM_ENV = "LAKEPORT_TEST_TEAM"
# Set only in the `second` location's env: a `reliability` run must not see it.
SECOND_ONLY_ENV = "LAKEPORT_TEST_SECOND_ONLY"


@dg.op
def report_team(context) -> None:
    context.log.info(
        f"team={os.environ.get(TEAM_ENV)} second_only={os.environ.get(SECOND_ONLY_ENV)}"
    )


@dg.job(executor_def=dg.in_process_executor)
def team_env_job():
    report_team()
