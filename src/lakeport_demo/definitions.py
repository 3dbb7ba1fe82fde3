"""The code location `lakeport_demo.definitions` (`dagster api grpc -m ...`).

The demo is a Dagster project (dg.toml at the repository root): its defs folder declares
one lakeport.LakeportDbtComponent (defs/lakehouse/defs.yaml), loaded here as `dg` loads
it (lakeport.component.load_code_location: as dg.load_from_defs_folder does, less its
catalog of component types, seconds of every code-server start). The component reads
the platform settings the process runs with (LAKEPORT_PLATFORM_FILE) and the dbt
manifest prepared at build time; it never parses dbt on import. lakeport_demo.build
builds the same definitions with the Python factory, for a platform given explicitly
(the tests).
"""

from pathlib import Path

from lakeport.component import load_code_location

defs = load_code_location(Path(__file__).resolve().parent)
