"""`python -m lakeport_demo.prepare`: compile the demo's dbt manifest (image build, tests)."""

from lakeport.dbt_manifest import prepare_manifest
from lakeport_demo.build import DBT_PROJECT_DIR

if __name__ == "__main__":
    print(prepare_manifest(DBT_PROJECT_DIR))
