"""What a run's scratch must hold before dbt starts, planned from the demo's real manifest
(and a small hand-written one for the cases the demo lacks: seeds, ephemeral models)."""

import pytest

from lakeport.dbt_manifest import load_manifest, prepare_manifest
from lakeport.run_scratch import Relation, is_stored, plan_scratch, relation_of
from lakeport_demo.build import DBT_PROJECT_DIR

M = "model.lakeport_demo."


@pytest.fixture(scope="module")
def manifest():
    prepare_manifest(DBT_PROJECT_DIR, if_stale=True)
    return load_manifest(DBT_PROJECT_DIR)


def test_a_mart_reads_its_tables_from_the_catalog_and_rebuilds_the_views_between(manifest):
    plan = plan_scratch(manifest, [M + "dim_customers"], partitioned=["fct_orders"])
    # dim_customers reads stg_customers (a view over the bronze source) and
    # int_orders_enriched (a table): the table and the source come from the catalog,
    # the view is rebuilt.
    assert set(plan.from_catalog.values()) == {
        Relation("intermediate", "int_orders_enriched"),
        Relation("raw", "raw_customers"),
    }
    assert plan.views_to_build == ["model.lakeport_demo.stg_customers"]
    assert plan.incremental_bases == {}
    # Its relationships test from fct_orders also touches dim_customers: read if present.
    assert Relation("marts", "fct_orders") in plan.from_catalog_if_present.values()


def test_a_view_alone_reads_its_source_and_what_the_tests_touching_it_read(manifest):
    plan = plan_scratch(manifest, [M + "stg_orders"], partitioned=["fct_orders"])
    assert set(plan.from_catalog.values()) == {Relation("raw", "raw_orders")}
    # dbt's eager indirect selection runs every test with stg_orders as a parent: its own
    # relationships test to stg_customers, and stg_payments' relationships test to it.
    assert plan.views_to_build == ["model.lakeport_demo.stg_customers",
                                   "model.lakeport_demo.stg_payments"]
    assert set(plan.from_catalog_if_present.values()) == {Relation("raw", "raw_customers"),
                                                          Relation("raw", "raw_payments")}


def test_a_selection_built_together_reads_nothing_it_builds(manifest):
    selected = [M + "stg_orders", M + "stg_payments", M + "int_orders_enriched"]
    plan = plan_scratch(manifest, selected, partitioned=["fct_orders"])
    assert set(plan.from_catalog.values()) == {Relation("raw", "raw_orders"),
                                               Relation("raw", "raw_payments")}
    # Only stg_orders' relationships test reads a view outside the selection.
    assert plan.views_to_build == ["model.lakeport_demo.stg_customers"]


def test_an_incremental_model_gets_its_table_as_base_but_a_partitioned_one_does_not(manifest):
    plan = plan_scratch(manifest, [M + "fct_payments", M + "fct_orders"],
                        partitioned=["fct_orders"])
    assert plan.incremental_bases == {M + "fct_payments": Relation("marts", "fct_payments")}
    assert plan.views_to_build == ["model.lakeport_demo.stg_orders",
                                   "model.lakeport_demo.stg_payments"]


def _node(kind, name, materialized=None, schema="main", parents=()):
    node = {"resource_type": kind, "name": name, "schema": schema, "alias": name,
            "fqn": ["team", name], "config": {"materialized": materialized}}
    return f"{kind}.team.{name}", node, list(parents)


def _manifest(*entries):
    nodes, parents = {}, {}
    for unique_id, node, node_parents in entries:
        node["unique_id"] = unique_id
        nodes[unique_id] = node
        parents[unique_id] = node_parents
    return {"nodes": nodes, "sources": {}, "parent_map": parents}


def test_seeds_are_stored_and_ephemeral_models_are_walked_through():
    manifest = _manifest(
        _node("seed", "countries", "seed", schema="seeds"),
        _node("model", "events", "table", schema="bronze"),
        _node("model", "eph", "ephemeral", parents=["model.team.events"]),
        _node("model", "v", "view", parents=["model.team.eph", "seed.team.countries"]),
        _node("model", "mart", "table", schema="marts", parents=["model.team.v"]),
    )
    plan = plan_scratch(manifest, ["model.team.mart"])
    assert set(plan.from_catalog.values()) == {Relation("seeds", "countries"),
                                               Relation("bronze", "events")}
    assert plan.views_to_build == ["model.team.v"]
    assert is_stored(manifest["nodes"]["seed.team.countries"])
    assert not is_stored(manifest["nodes"]["model.team.eph"])
    assert not is_stored(manifest["nodes"]["model.team.v"])


def test_a_source_is_the_table_named_by_its_schema_and_identifier():
    source = {"resource_type": "source", "schema": "raw", "name": "orders",
              "identifier": "orders_export"}
    assert relation_of(source) == Relation("raw", "orders_export")
    assert relation_of(source).sql == '"raw"."orders_export"'


def test_the_tests_a_rebuilt_view_would_bring_in_are_left_out(manifest):
    from lakeport.run_scratch import selectors, tests_to_leave_out

    plan = plan_scratch(manifest, [M + "dim_customers"], partitioned=["fct_orders"])
    left_out = tests_to_leave_out(manifest, [M + "dim_customers"], plan.views_to_build)
    names = {manifest["nodes"][t]["name"] for t in left_out}
    # stg_customers' own tests, and stg_orders' relationships test that reads it: neither
    # belongs to this run. dim_customers' own tests are not touched.
    assert names == {
        "unique_stg_customers_customer_id", "not_null_stg_customers_customer_id",
        "accepted_values_stg_customers_country__DE__FR__NL__US__GB",
        "relationships_stg_orders_customer_id__customer_id__ref_stg_customers_",
    }
    assert selectors(manifest, plan.views_to_build) == ["lakeport_demo.staging.stg_customers"]
    # A selected model's own test stays even when it reads a rebuilt view.
    own = tests_to_leave_out(manifest, [M + "stg_orders"], [M + "stg_customers"])
    assert not [t for t in own if manifest["nodes"][t].get("attached_node") == M + "stg_orders"]
