"""The parts of openlineage-dbt's artifact processor lakeport.dbt_lineage overrides or
reads (pinned openlineage-integration-common 1.54.0). If an upgrade renames or reshapes
them, this fails here instead of every run's lineage turning into a warning."""

import inspect
import uuid

from openlineage.common.provider.dbt.processor import DbtArtifactProcessor, ModelNode

from lakeport.config import parse_platform
from lakeport.dbt_lineage import dbt_model_events
from lakeport.lineage import RunLineage


def _parameters(name: str) -> list[str]:
    return list(inspect.signature(getattr(DbtArtifactProcessor, name)).parameters)


def test_the_processor_methods_dbt_lineage_overrides_keep_their_signatures():
    assert _parameters("_format_dataset_name") == ["self", "database", "schema", "table"]
    assert _parameters("extract_dataset_data") == ["self", "node", "assertions", "has_facets"]
    assert _parameters("extract_dataset_namespace") == ["self", "profile"]
    assert _parameters("get_dbt_metadata") == ["self"]
    assert _parameters("dbt_run_run_facet") == ["self"]
    assert DbtArtifactProcessor.should_raise_on_unsupported_command is True
    assert [f.name for f in ModelNode.__attrs_attrs__] == ["type", "metadata_node",
                                                            "catalog_node"]


def _node(kind: str, name: str, schema: str, **extra) -> dict:
    return {"unique_id": f"{kind}.shop.{name}", "resource_type": kind, "name": name,
            "database": "lakehouse", "schema": schema, "alias": name, "columns": {},
            "description": "", "config": {"materialized": "table"}, "tags": [], "meta": {},
            "original_file_path": f"models/{name}.sql", **extra}


def test_a_built_model_is_named_by_its_iceberg_identifier_with_the_scratch_columns():
    source = _node("source", "orders", "raw", identifier="orders_export")
    model = _node("model", "stg_orders", "staging", compiled_code="select id from x")
    manifest = {
        "metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json",
                     "project_name": "shop"},
        "nodes": {model["unique_id"]: model},
        "sources": {source["unique_id"]: source},
        "parent_map": {model["unique_id"]: [source["unique_id"]]},
        "exposures": {},
    }
    timing = [{"name": "execute", "started_at": "2026-12-03T10:00:00Z",
               "completed_at": "2026-12-03T10:00:01Z"}]
    run_results = {
        "metadata": {"dbt_version": "1.11.16", "invocation_id": str(uuid.uuid4())},
        "args": {"which": "build"},
        "results": [{"unique_id": model["unique_id"], "status": "success", "timing": timing,
                     "adapter_response": {}}],
    }
    columns = {"raw.orders_export": [("id", "BIGINT")], "staging.stg_orders": [("id", "BIGINT")]}
    run_id = str(uuid.uuid4())
    lineage = RunLineage(parse_platform(""), run_id, "lakehouse_job", None)
    start, complete = dbt_model_events(lineage, manifest, run_results, columns)
    assert (start.eventType.value, complete.eventType.value) == ("START", "COMPLETE")
    assert complete.job.name == "staging.shop.stg_orders.build.run"
    assert complete.run.facets["parent"].run.runId == run_id
    (read,) = complete.inputs
    (written,) = complete.outputs
    # A source is named by its identifier (the Iceberg table), not its dbt name.
    assert (read.namespace, read.name) == ("iceberg://lakeport", "raw.orders_export")
    assert (written.namespace, written.name) == ("iceberg://lakeport", "staging.stg_orders")
    assert [(f.name, f.type) for f in written.facets["schema"].fields] == [("id", "BIGINT")]
    assert "dataSource" not in written.facets  # the processor's would name the scratch
    assert written.facets["catalog"].framework == "iceberg"
