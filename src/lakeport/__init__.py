"""lakeport: a Kubernetes-native lakehouse platform (Dagster, dbt-duckdb, Iceberg)."""

__version__ = "0.1.0"

# What `dg list components` lists from this package (the dagster_dg_cli.registry_modules
# entry point names it), imported only when asked for: `import lakeport` stays light for
# the CLI and the dbt subprocess.
_COMPONENTS = {"LakeportDbtComponent": "lakeport.component"}


def __getattr__(name: str):
    if name in _COMPONENTS:
        import importlib

        return getattr(importlib.import_module(_COMPONENTS[name]), name)
    raise AttributeError(f"module 'lakeport' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_COMPONENTS])
