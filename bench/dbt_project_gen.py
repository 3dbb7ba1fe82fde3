"""A generated dbt-duckdb project of any size, shaped like a real lakehouse.

Four layers, each its own folder (lakeport's translator makes the folder the asset group):
raw tables generated in DuckDB, staging views over one raw table each, intermediate tables
joining two earlier models, marts aggregating one. Every model has a description, tags
(its layer, a business domain, `nightly` on marts), an owner, a `not_null` test and, where
the key is unique by construction, a `unique` test. The graph is random but seeded, so
the same size always gives the same project.

Two dbt targets share the models: `lakeport` (dbt-duckdb with lakeport's plugin applying
the run's DuckDB settings, what the factory runs) and `bare` (plain dbt-duckdb).

    python -m bench.dbt_project_gen DIR --models 200
"""

import argparse
import random
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PROJECT_NAME = "bench_project"
# Share of the models in each layer, in build order.
LAYERS = (("raw", 0.10), ("staging", 0.30), ("intermediate", 0.35), ("marts", 0.25))
MATERIALIZED = {"raw": "table", "staging": "view", "intermediate": "table", "marts": "table"}
PREFIX = {"raw": "raw", "staging": "stg", "intermediate": "int", "marts": "mart"}
DOMAINS = ("finance", "sales", "marketing", "supply", "support")
# Layers whose `id` column is unique by construction (staging views pass raw ids through,
# marts group by one key); intermediate joins keep the left side's unique ids too.
UNIQUE_ID_LAYERS = ("raw", "staging", "intermediate", "marts")


@dataclass
class Model:
    name: str
    layer: str
    domain: str
    parents: list[str] = field(default_factory=list)


def plan(models: int, seed: int = 7) -> list[Model]:
    """The models and their parents; every layer gets at least one model."""
    if models < len(LAYERS):
        raise ValueError(f"a project needs at least {len(LAYERS)} models (one per layer)")
    rng = random.Random(seed)
    counts = [max(1, round(models * share)) for _, share in LAYERS]
    counts[-1] = models - sum(counts[:-1])  # rounding goes to the marts
    planned: dict[str, list[Model]] = {}
    for (layer, _), count in zip(LAYERS, counts, strict=True):
        planned[layer] = []
        for index in range(count):
            model = Model(f"{PREFIX[layer]}_{index:04d}", layer, rng.choice(DOMAINS))
            if layer == "staging":
                model.parents = [rng.choice(planned["raw"]).name]
            elif layer == "intermediate":
                # Two parents from staging or earlier intermediate models: a real DAG
                # with depth inside the layer, not just four flat ranks.
                pool = planned["staging"] + planned["intermediate"]
                model.parents = [m.name for m in rng.sample(pool, min(2, len(pool)))]
            elif layer == "marts":
                model.parents = [rng.choice(planned["intermediate"] or planned["staging"]).name]
            planned[layer].append(model)
    return [m for layer, _ in LAYERS for m in planned[layer]]


def model_sql(model: Model) -> str:
    if model.layer == "raw":
        return (
            "select i as id, i % 97 as k, (i * 7) % 1000 / 10.0 as amount,\n"
            "       'row-' || i::varchar as label\n"
            "from range({{ var('raw_rows') }}) t(i)\n"
        )
    if model.layer == "staging":
        return (
            "select id, k, amount, upper(label) as label\n"
            f"from {{{{ ref('{model.parents[0]}') }}}}\n"
            "where amount >= 0\n"
        )
    if model.layer == "intermediate":
        if len(model.parents) == 1:
            return f"select id, k, amount, label from {{{{ ref('{model.parents[0]}') }}}}\n"
        left, right = model.parents
        return (
            "select a.id, a.k, a.amount + coalesce(b.amount, 0) as amount, a.label\n"
            f"from {{{{ ref('{left}') }}}} a\n"
            f"left join {{{{ ref('{right}') }}}} b on a.id = b.id\n"
        )
    return (
        "select k as id, k, sum(amount) as amount, max(label) as label\n"
        f"from {{{{ ref('{model.parents[0]}') }}}}\n"
        "group by k\n"
    )


def schema_yml(models: list[Model]) -> dict:
    entries = []
    for model in models:
        tests = ["not_null"] + (["unique"] if model.layer in UNIQUE_ID_LAYERS else [])
        entries.append({
            "name": model.name,
            "description": f"{model.layer} model for the {model.domain} domain",
            "config": {
                "tags": [model.layer, model.domain] + (["nightly"] if model.layer == "marts"
                                                       else []),
                "meta": {"owner": f"team:{model.domain}"},
            },
            "columns": [
                {"name": "id", "description": "row key", "data_tests": tests},
                {"name": "amount", "description": "a measure"},
            ],
        })
    return {"version": 2, "models": entries}


def generate(root: Path, models: int, raw_rows: int = 100, threads: int = 1,
             seed: int = 7) -> Path:
    """Write the project to `root` (created); returns it."""
    root.mkdir(parents=True, exist_ok=True)
    planned = plan(models, seed)
    layers_config = {
        layer: {"+schema": layer, "+materialized": MATERIALIZED[layer]} for layer, _ in LAYERS
    }
    _write_yaml(root / "dbt_project.yml", {
        "name": PROJECT_NAME,
        "version": "1.0.0",
        "config-version": 2,
        "profile": PROJECT_NAME,
        "model-paths": ["models"],
        "vars": {"raw_rows": raw_rows},
        "models": {PROJECT_NAME: layers_config},
    })
    path = "{{ env_var('LAKEPORT_DUCKDB_PATH', 'target/bench.duckdb') }}"
    _write_yaml(root / "profiles.yml", {
        PROJECT_NAME: {
            "target": "lakeport",
            "outputs": {
                "lakeport": {"type": "duckdb", "path": path, "threads": threads,
                             "plugins": [{"module": "lakeport.dbt_duckdb_plugin"}]},
                "bare": {"type": "duckdb", "path": path, "threads": threads},
            },
        }
    })
    for layer, _ in LAYERS:
        folder = root / "models" / layer
        folder.mkdir(parents=True, exist_ok=True)
        in_layer = [m for m in planned if m.layer == layer]
        for model in in_layer:
            (folder / f"{model.name}.sql").write_text(model_sql(model))
        _write_yaml(folder / f"_{layer}.yml", schema_yml(in_layer))
    return root


def _write_yaml(path: Path, data: dict) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--raw-rows", type=int, default=100)
    args = parser.parse_args()
    generate(args.directory, args.models, args.raw_rows)
    print(args.directory)


if __name__ == "__main__":
    main()
