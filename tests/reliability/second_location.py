"""The second code location of the fault platform: another team beside `reliability`,
from the same platform file, with its own env."""

import dagster as dg
from team_env import team_env_job

defs = dg.Definitions(jobs=[team_env_job])
