"""The code location `lakeport_demo.definitions` (`dagster api grpc -m ...`).

Reads the platform settings the process runs with (LAKEPORT_PLATFORM_FILE) and the dbt
manifest prepared at build time; it never parses dbt on import.
"""

from lakeport.config import load_effective_platform
from lakeport_demo.build import build_demo_definitions

defs = build_demo_definitions(load_effective_platform())
