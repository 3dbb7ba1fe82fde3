"""The pyiceberg catalog built from platform.yaml: properties and clear errors."""

import pytest

from lakeport.catalog import (
    CATALOG_URI_ENV,
    S3_ENDPOINT_ENV,
    CatalogConfigError,
    load_catalog,
    s3_fileio_properties,
    sql_catalog_path,
    table_defaults,
)
from lakeport.config import parse_platform
from lakeport.credentials import MissingSecretError


def test_fileio_properties_follow_object_storage(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "key-secret")
    platform = parse_platform(
        "objectStorage: {endpoint: 'http://s3.local:4566', region: eu-west-1, pathStyle: true}"
    )
    assert s3_fileio_properties(platform) == {
        "py-io-impl": "lakeport.iceberg_fileio.SinglePutFileIO",
        "s3.endpoint": "http://s3.local:4566",
        "s3.region": "eu-west-1",
        "s3.force-virtual-addressing": "false",
        "s3.access-key-id": "key-id",
        "s3.secret-access-key": "key-secret",
    }


def test_empty_endpoint_falls_back_to_the_environment_then_aws(monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    platform = parse_platform("objectStorage: {pathStyle: false}")
    monkeypatch.setenv(S3_ENDPOINT_ENV, "http://localstack:4566")
    assert s3_fileio_properties(platform)["s3.endpoint"] == "http://localstack:4566"
    monkeypatch.delenv(S3_ENDPOINT_ENV)
    props = s3_fileio_properties(platform)
    assert "s3.endpoint" not in props and "s3.access-key-id" not in props
    assert props["s3.force-virtual-addressing"] == "true"


def test_sql_catalog_lives_under_the_data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    platform = parse_platform(
        f"catalog: {{type: sql, sql: {{sqlitePath: cat/iceberg.db}}}}\ndev: {{dataDir: {tmp_path}}}"
    )
    catalog = load_catalog(platform)
    assert sql_catalog_path(platform) == tmp_path / "cat" / "iceberg.db"
    catalog.create_namespace("analytics")
    assert ("analytics",) in catalog.list_namespaces()


def test_the_catalog_carries_the_platforms_snapshot_retention(tmp_path, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    default = load_catalog(parse_platform(f"catalog: {{type: sql}}\ndev: {{dataDir: {tmp_path}}}"))
    # Iceberg's own defaults: five days, one snapshot.
    assert table_defaults(default) == {
        "history.expire.max-snapshot-age-ms": str(5 * 24 * 3600 * 1000),
        "history.expire.min-snapshots-to-keep": "1",
    }
    chosen = load_catalog(parse_platform(
        "catalog: {type: sql, snapshotRetention: {maxAgeDays: 0.5, minSnapshots: 10}}\n"
        f"dev: {{dataDir: {tmp_path}}}"))
    assert table_defaults(chosen) == {
        "history.expire.max-snapshot-age-ms": str(12 * 3600 * 1000),
        "history.expire.min-snapshots-to-keep": "10",
    }


@pytest.mark.parametrize("retention, field", [
    ("{maxAgeDays: 0}", "maxAgeDays"), ("{minSnapshots: 0}", "minSnapshots"),
    ("{keepDays: 3}", "keepDays"),
])
def test_a_retention_that_keeps_nothing_is_refused_naming_the_field(retention, field):
    from lakeport.config import PlatformFileError

    with pytest.raises(PlatformFileError, match=f"snapshotRetention.{field}"):
        parse_platform(f"catalog: {{snapshotRetention: {retention}}}")


def test_rest_catalog_without_uri_says_where_to_set_it(monkeypatch):
    monkeypatch.delenv(CATALOG_URI_ENV, raising=False)
    platform = parse_platform("catalog: {type: rest}")
    with pytest.raises(CatalogConfigError, match=f"catalog.rest.uri .* {CATALOG_URI_ENV}"):
        load_catalog(platform)


def test_rest_catalog_without_credential_names_the_variable_not_a_value(monkeypatch):
    monkeypatch.delenv("LAKEPORT_CATALOG_CREDENTIAL", raising=False)
    platform = parse_platform("catalog: {type: rest, rest: {uri: 'http://polaris:8181/api/catalog'}}")
    with pytest.raises(MissingSecretError, match="LAKEPORT_CATALOG_CREDENTIAL"):
        load_catalog(platform)
