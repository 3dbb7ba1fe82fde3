"""The chart ships exactly what the platform model generates."""

from pathlib import Path

import yaml

from lakeport.config import chart_defaults
from lakeport.schema import values_schema_json, values_yaml

CHART = Path(__file__).resolve().parents[2] / "charts/lakeport"


def test_values_schema_matches_model():
    assert (CHART / "values.schema.json").read_text() == values_schema_json(), (
        "charts/lakeport/values.schema.json drifted from the platform model: run `make schema`"
    )


def test_values_yaml_matches_model():
    assert (CHART / "values.yaml").read_text() == values_yaml(), (
        "charts/lakeport/values.yaml drifted from the platform model: run `make schema`"
    )
    assert yaml.safe_load(values_yaml()) == chart_defaults()


def test_schema_rejects_unknown_keys_everywhere():
    import json

    schema = json.loads(values_schema_json())
    objects = [schema, *schema["$defs"].values()]
    open_objects = [
        d.get("title") for d in objects
        if d.get("type") == "object" and d.get("additionalProperties") is not False
        and "properties" in d
    ]
    assert open_objects == []
