"""lakeport's dbt-duckdb plugin applies the run's settings to dbt's DuckDB connections."""

import duckdb

from lakeport.dbt_duckdb_plugin import Plugin
from lakeport.duckdb_connection import SETTINGS_ENV, DuckDBSettings


def current(connection, name):
    return connection.execute(f"select current_setting('{name}')").fetchone()[0]


def test_settings_handed_over_by_the_run_are_applied(tmp_path, monkeypatch):
    settings = DuckDBSettings(
        memory_limit="321MiB",
        threads=1,
        temp_directory=str(tmp_path / "spill"),
        max_temp_directory_size="2048MiB",
        memory_limit_source="test",
        threads_source="test",
    )
    monkeypatch.setenv(SETTINGS_ENV, settings.to_json())
    with duckdb.connect() as connection:
        Plugin("lakeport", {}).configure_connection(connection)
        assert current(connection, "memory_limit") == "321.0 MiB"
        assert current(connection, "threads") == 1
        assert current(connection, "temp_directory") == str(tmp_path / "spill")
        assert current(connection, "max_temp_directory_size") == "2.0 GiB"


def test_without_a_run_the_plugin_derives_settings_from_the_platform_file(tmp_path, monkeypatch):
    platform_file = tmp_path / "platform.yaml"
    platform_file.write_text(
        f"""
resourceProfiles:
  transform:
    requests: {{cpu: 500m, memory: 1Gi}}
    limits: {{cpu: "1", memory: 2Gi}}
    duckdb: {{memoryLimit: 700Mi, threads: 1}}
dev:
  dataDir: {tmp_path}
"""
    )
    monkeypatch.delenv(SETTINGS_ENV, raising=False)
    monkeypatch.setenv("LAKEPORT_PLATFORM_FILE", str(platform_file))
    with duckdb.connect() as connection:
        Plugin("lakeport", {}).configure_connection(connection)
        assert current(connection, "memory_limit") == "700.0 MiB"
        assert current(connection, "threads") == 1
        assert current(connection, "temp_directory") == str(tmp_path / "spill")
