"""DuckDB extensions from their PyPI wheels, not from the network.

`INSTALL iceberg` downloads from extensions.duckdb.org, which run pods (and CI) cannot
reach; the pinned `duckdb-extension-<name>` wheels carry the same binaries. DuckDB would
autoload iceberg's own dependencies from its extension directory, where they are not, so
they are loaded first, explicitly.
"""

import importlib.util
from pathlib import Path

import duckdb

# Extensions an extension needs loaded before it.
_NEEDS = {"iceberg": ("avro", "httpfs")}


def extension_file(name: str) -> Path:
    package = f"duckdb_extension_{name}"
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"DuckDB extension {name!r}: the Python package {package} is not installed "
            f"(pip install duckdb-extension-{name}=={duckdb.__version__})"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    path = root / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not path.is_file():
        found = sorted(p.parent.name for p in root.glob("extensions/*/*.duckdb_extension"))
        raise FileNotFoundError(
            f"DuckDB extension {name!r} for DuckDB {duckdb.__version__} is not in {root} "
            f"(found versions: {', '.join(found) or 'none'})"
        )
    return path


def load_extension(connection: duckdb.DuckDBPyConnection, name: str) -> None:
    for dependency in _NEEDS.get(name, ()):
        load_extension(connection, dependency)
    loaded = connection.execute(
        "select loaded from duckdb_extensions() where extension_name = ?", [name]
    ).fetchone()
    if loaded and loaded[0]:
        return
    path = str(extension_file(name)).replace("'", "''")
    connection.execute(f"LOAD '{path}'")
