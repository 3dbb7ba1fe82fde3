"""The private parts of dagster-dbt and dagster-postgres (both pinned at 0.29.27) that
lakeport overrides. An override of a method that upstream renamed is silently dead: the
run still works, only slower (dagster-dbt's `dbt --version` subprocess and adapter come
back, several seconds a run), without the idle-connection test (the webserver's first
query after a Postgres restart fails) or with a run's planned events stored one by one.
These tests fail instead, naming the seam (tests/integration/test_postgres_storage.py runs
the batch against a real PostgreSQL)."""

import importlib.metadata
import inspect
import re
import sys
from functools import cached_property
from pathlib import Path

from dagster_dbt import DbtCliResource
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.run_storage import PostgresRunStorage
from dagster_postgres.schedule_storage import PostgresScheduleStorage
from packaging import version

from lakeport.dbt_assets import LakeportDbtCliResource
from lakeport.postgres_storage import (
    EVENT_BATCH_SIZE_ENV,
    PooledPostgresEventLogStorage,
    PooledPostgresRunStorage,
    PooledPostgresScheduleStorage,
)

DEMO_PROJECT = Path(__file__).resolve().parents[2] / "src" / "lakeport_demo" / "dbt_project"
POSTGRES_STORAGES = [
    (PostgresRunStorage, PooledPostgresRunStorage),
    (PostgresEventLogStorage, PooledPostgresEventLogStorage),
    (PostgresScheduleStorage, PooledPostgresScheduleStorage),
]


def _parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def _seam(cls: type, name: str):
    """The attribute `cls` itself defines, or a failure naming the seam."""
    assert name in vars(cls), (
        f"seam gone: {cls.__module__}.{cls.__qualname__}.{name} no longer exists; lakeport's "
        f"override of it does nothing now"
    )
    return vars(cls)[name]


def test_dagster_dbt_still_reads_the_cli_version_lakeport_answers_without_a_subprocess():
    upstream = _seam(DbtCliResource, "_cli_version")
    assert isinstance(upstream, cached_property), (
        "seam changed: DbtCliResource._cli_version is no longer a cached_property"
    )
    assert isinstance(vars(LakeportDbtCliResource)["_cli_version"], cached_property)
    assert "self._cli_version" in inspect.getsource(DbtCliResource.cli), (
        "seam changed: DbtCliResource.cli no longer reads self._cli_version"
    )


def test_dagster_dbt_still_opens_its_adapter_through_the_method_lakeport_turns_off():
    upstream = _seam(DbtCliResource, "_initialize_dbt_core_adapter")
    assert _parameters(upstream) == ["self", "args"], (
        "seam changed: DbtCliResource._initialize_dbt_core_adapter's parameters are now "
        f"{_parameters(upstream)}"
    )
    assert _parameters(LakeportDbtCliResource._initialize_dbt_core_adapter) == ["self", "args"]
    assert "self._initialize_dbt_core_adapter(args)" in inspect.getsource(DbtCliResource.cli), (
        "seam changed: DbtCliResource.cli no longer calls self._initialize_dbt_core_adapter"
    )


def test_the_cli_version_override_gives_the_installed_dbt_core_without_running_dbt(monkeypatch):
    import dagster_dbt.core.resource as upstream_resource

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"dbt was started to learn its version: {args}")

    # dagster-dbt's own _cli_version runs `dbt --version` through this name.
    assert hasattr(upstream_resource, "check_output"), "seam changed: resource.check_output"
    monkeypatch.setattr(upstream_resource, "check_output", no_subprocess)
    resource = LakeportDbtCliResource(
        project_dir=str(DEMO_PROJECT), dbt_executable=str(Path(sys.executable).with_name("dbt"))
    )
    assert resource._cli_version == version.parse(importlib.metadata.version("dbt-core"))


def test_dagster_postgres_storages_keep_the_seams_the_pooled_storages_replace():
    for upstream, pooled in POSTGRES_STORAGES:
        name = upstream.__qualname__
        assert _parameters(upstream.__init__) == [
            "self", "postgres_url", "should_autocreate_tables", "inst_data", "token_provider",
        ], f"seam changed: {name}.__init__ takes {_parameters(upstream.__init__)}"
        webserver = _seam(upstream, "optimize_for_webserver")
        assert _parameters(webserver) == [
            "self", "statement_timeout", "pool_recycle", "max_overflow",
        ], f"seam changed: {name}.optimize_for_webserver takes {_parameters(webserver)}"
        # The pooled storages swap `self._engine` and build engines from these two.
        for source in (inspect.getsource(upstream.__init__), inspect.getsource(webserver)):
            assert "self._engine" in source or "self._token_provider" in source, (
                f"seam changed: {name} no longer keeps its engine in self._engine"
            )
        assert "self._engine = " in inspect.getsource(webserver), (
            f"seam changed: {name}.optimize_for_webserver no longer replaces self._engine"
        )
        _seam(upstream, "from_config_value")
        assert pooled.__mro__.index(upstream) > 1  # the pooled override comes first


def test_dagster_calls_optimize_for_webserver_on_each_storage_as_lakeport_overrides_it():
    from dagster._core.instance.methods import storage_methods

    source = inspect.getsource(storage_methods)
    for storage in ("_run_storage", "_event_storage", "_schedule_storage"):
        assert f"{storage}.optimize_for_webserver(" in source, (
            f"seam changed: DagsterInstance no longer calls {storage}.optimize_for_webserver"
        )


def test_dagster_still_batches_planned_events_as_the_event_log_storage_stores_them():
    from dagster._core.instance.methods import event_methods
    from dagster._core.instance.runs import run_domain
    from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage

    assert f'"{EVENT_BATCH_SIZE_ENV}"' in inspect.getsource(event_methods), (
        f"seam changed: dagster no longer reads {EVENT_BATCH_SIZE_ENV}"
    )
    planned = inspect.getsource(run_domain.RunDomain._log_asset_planned_events)
    assert "batch_metadata=" in planned, (
        "seam changed: dagster no longer sends a run's planned events as a batch"
    )
    # The storage's batch write, and what it calls for each event as store_event does.
    assert _parameters(_seam(PostgresEventLogStorage, "store_event_batch")) == ["self", "events"]
    for name, parameters in (
        ("prepare_insert_event_batch", ["self", "events"]),
        ("_store_asset_event", ["self", "conn", "event", "event_id"]),
        ("_store_asset_event_tags", ["self", "conn", "events", "event_ids"]),
        ("store_asset_check_event", ["self", "event", "event_id"]),
    ):
        method = getattr(SqlEventLogStorage, name, None)
        assert method is not None, f"seam gone: SqlEventLogStorage.{name} no longer exists"
        assert _parameters(method) == parameters, (
            f"seam changed: SqlEventLogStorage.{name} takes {_parameters(method)}"
        )
    assert _parameters(_seam(PostgresEventLogStorage, "index_transaction")) == ["self"]


def test_dagster_postgres_store_event_still_does_what_lakeports_copy_does_and_a_notify():
    """PooledPostgresEventLogStorage.store_event is upstream's body less its NOTIFY: any
    other change upstream must reach the copy."""
    source = inspect.getsource(_seam(PostgresEventLogStorage, "store_event"))
    assert _parameters(PostgresEventLogStorage.store_event) == ["self", "event"]
    calls = set(re.findall(r"self\.(\w+)\(", source))
    assert calls == {
        "prepare_insert_event", "_connect", "index_transaction", "_store_asset_event_tags",
        "_store_asset_event", "store_asset_check_event",
    }, f"seam changed: dagster-postgres' store_event now calls {sorted(calls)}"
    for name in ("ASSET_EVENTS", "ASSET_CHECK_EVENTS", "NOTIFY"):
        assert name in source, f"seam changed: dagster-postgres' store_event no longer uses {name}"
    # The NOTIFY is sent for nobody: no dagster-postgres module LISTENs.
    import dagster_postgres

    package = Path(dagster_postgres.__file__).parent
    listening = [str(path.relative_to(package)) for path in package.rglob("*.py")
                 if "LISTEN " in path.read_text()]
    assert listening == [], f"dagster-postgres LISTENs again, in {listening}"


def test_dagster_asks_whether_the_check_table_exists_through_has_table():
    from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage

    assert "self.has_table(" in inspect.getsource(SqlEventLogStorage.supports_asset_checks.fget), (
        "seam changed: SqlEventLogStorage.supports_asset_checks no longer calls has_table"
    )
    assert _parameters(_seam(PostgresEventLogStorage, "has_table")) == ["self", "table_name"]


def test_dagster_reads_the_asset_keys_columns_through_the_method_lakeport_caches():
    from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage

    method = _seam(SqlEventLogStorage, "_has_asset_key_col_on_connection")
    assert _parameters(method) == ["self", "conn", "column_name"], (
        "seam changed: SqlEventLogStorage._has_asset_key_col_on_connection takes "
        f"{_parameters(method)}"
    )
    assert "self._has_asset_key_col_on_connection(" in inspect.getsource(
        SqlEventLogStorage.has_asset_key_col
    ), "seam changed: has_asset_key_col no longer asks _has_asset_key_col_on_connection"


def test_dagster_dbt_still_records_each_assets_dbt_node_in_its_specs_metadata():
    # lakeport.dbt_assets._DbtBuild._selected_unique_ids reads a selected asset's dbt node
    # from its spec's metadata, as dagster-dbt's own selection does.
    from dagster_dbt import DagsterDbtTranslator
    from dagster_dbt.asset_utils import (
        DAGSTER_DBT_UNIQUE_ID_METADATA_KEY,
        get_dbt_resource_names_for_asset_keys,
    )

    assert "DAGSTER_DBT_UNIQUE_ID_METADATA_KEY" in inspect.getsource(
        get_dbt_resource_names_for_asset_keys)
    node = {
        "unique_id": "model.shop.orders", "resource_type": "model", "name": "orders",
        "package_name": "shop", "original_file_path": "models/orders.sql",
        "fqn": ["shop", "orders"], "config": {}, "meta": {}, "tags": [], "depends_on": {},
        "schema": "main", "database": "scratch", "alias": "orders", "description": "",
        "columns": {},
    }
    manifest = {"nodes": {node["unique_id"]: node}, "sources": {}, "child_map": {},
                "parent_map": {}, "metadata": {}}
    spec = DagsterDbtTranslator().get_asset_spec(manifest, node["unique_id"], None)
    assert spec.metadata[DAGSTER_DBT_UNIQUE_ID_METADATA_KEY] == "model.shop.orders"
