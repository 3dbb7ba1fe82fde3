"""The demo's Definitions for a given platform (the code location and tests both use it)."""

from pathlib import Path

import dagster as dg

from lakeport.lakehouse import build_lakehouse_definitions
from lakeport.platform import Platform
from lakeport_demo.bronze import BRONZE_ASSETS

DBT_PROJECT_DIR = Path(__file__).resolve().parent / "dbt_project"
# The first day the demo's daily fact table has a partition for.
PARTITIONS_START_DATE = "2025-01-01"


def build_demo_definitions(
    platform: Platform, project_dir: Path = DBT_PROJECT_DIR
) -> dg.Definitions:
    return build_lakehouse_definitions(
        project_dir,
        platform,
        partitions_start_date=PARTITIONS_START_DATE,
        python_assets=BRONZE_ASSETS,
    )
