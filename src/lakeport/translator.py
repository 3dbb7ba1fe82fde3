"""How a dbt model becomes a Dagster asset in lakeport.

Conventions the demo (and any lakeport dbt project) follows:
- the folder under models/ is the layer: it is the asset key's prefix and the asset group
  (raw, staging, intermediate, marts);
- `meta.owner` / `meta.owners` are the asset owners (emails or `team:name`);
- `meta.lakeport.profile` names the resource profile its runs need;
- `meta.lakeport.partition_column` makes a model daily-partitioned on that date column;
- `meta.lakeport.cron` overrides the cron of a table's automation condition;
- every table, incremental model, seed and snapshot is an Iceberg table named like its
  relation, `<schema>.<alias>` (lakeport.run_scratch); views and ephemeral models are not
  stored;
- a dbt source is the Iceberg table `<schema>.<identifier>`, and its asset key is
  `[schema, identifier]`: the key a Python asset writing that table has
  (lakeport.lakehouse_io), so Python bronze and dbt models form one lineage.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

from lakeport.automation import condition_for
from lakeport.platform import Platform
from lakeport.profiles import PROFILE_TAG
from lakeport.run_scratch import is_stored, relation_of

MATERIALIZATION_TAG = "dagster/materialization"


@dataclass(frozen=True)
class ModelOptions:
    """What a model's `meta.lakeport` asks of lakeport."""

    profile: str | None = None
    partition_column: str | None = None
    cron: str | None = None


def model_meta(props: Mapping[str, Any]) -> dict[str, Any]:
    return {**(props.get("meta") or {}), **((props.get("config") or {}).get("meta") or {})}


def model_options(props: Mapping[str, Any]) -> ModelOptions:
    options = model_meta(props).get("lakeport") or {}
    if "iceberg" in options:
        raise ValueError(
            f"dbt model {props.get('name')!r}: meta.lakeport.iceberg is no longer an option: "
            "every table, incremental model and seed is stored in the Iceberg catalog "
            "(later runs read it from there); make the model a view to keep it out"
        )
    unknown = set(options) - set(ModelOptions.__dataclass_fields__)
    if unknown:
        raise ValueError(
            f"dbt model {props.get('name')!r}: unknown meta.lakeport keys {sorted(unknown)} "
            f"(known: {sorted(ModelOptions.__dataclass_fields__)})"
        )
    return ModelOptions(**options)


def layer_of(props: Mapping[str, Any]) -> str:
    if props.get("resource_type") == "source":
        return "sources"
    fqn = props.get("fqn") or []
    # fqn is [project, folder..., name]: the first folder is the layer.
    return fqn[1] if len(fqn) > 2 else "models"


def materialization_of(props: Mapping[str, Any]) -> str:
    return (props.get("config") or {}).get("materialized") or ""


class LakeportDbtTranslator(DagsterDbtTranslator):
    """dagster-dbt's translator with lakeport's conventions (this module's docstring): asset
    keys and groups by layer, owners, the resource profile tag (`meta.lakeport.profile`,
    else `group_profiles[layer]`), automation conditions, and asset checks from dbt tests.
    Subclass it, or pass a component's `translation`, to change keys or groups; the op
    finds each node again through `get_asset_spec`, so a changed key still works."""

    def __init__(
        self,
        platform: Platform,
        group_profiles: Mapping[str, str] | None = None,
    ):
        super().__init__(DagsterDbtTranslatorSettings(enable_asset_checks=True))
        self.platform = platform
        self.group_profiles = dict(group_profiles or {})
        for name in self.group_profiles.values():
            platform.profile(name)  # an unknown name fails here, naming the profiles there are

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props.get("resource_type") == "source":
            return dg.AssetKey(list(relation_of(dbt_resource_props).identifier))
        return dg.AssetKey([layer_of(dbt_resource_props), dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return layer_of(dbt_resource_props)

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> list[str] | None:
        meta = model_meta(dbt_resource_props)
        owners = meta.get("owners") or ([meta["owner"]] if meta.get("owner") else [])
        return list(owners) or super().get_owners(dbt_resource_props)

    def get_tags(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, str]:
        tags = dict(super().get_tags(dbt_resource_props))
        materialized = materialization_of(dbt_resource_props)
        if materialized:
            tags[MATERIALIZATION_TAG] = materialized
        profile = self.profile_of(dbt_resource_props)
        if profile:
            tags[PROFILE_TAG] = profile
        return tags

    def get_metadata(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, Any]:
        metadata = dict(super().get_metadata(dbt_resource_props))
        if is_stored(dbt_resource_props):
            metadata["lakeport/iceberg_table"] = str(relation_of(dbt_resource_props))
        return metadata

    def get_automation_condition(
        self, dbt_resource_props: Mapping[str, Any]
    ) -> dg.AutomationCondition | None:
        if dbt_resource_props.get("resource_type") != "model":
            return None
        options = model_options(dbt_resource_props)
        return condition_for(
            materialization_of(dbt_resource_props),
            partitioned=options.partition_column is not None,
            cron=options.cron,
        )

    def get_asset_spec(self, manifest, unique_id, project) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        if is_stored(self.get_resource_props(manifest, unique_id)):
            spec = spec.merge_attributes(kinds={"iceberg"})
        return spec

    def profile_of(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        """The profile a model's runs need: its meta's, else its group's; None: default."""
        name = model_options(dbt_resource_props).profile
        if name is None:
            name = self.group_profiles.get(layer_of(dbt_resource_props))
        if name is not None and name not in self.platform.resource_profiles:
            known = ", ".join(sorted(self.platform.resource_profiles))
            raise ValueError(
                f"dbt model {dbt_resource_props.get('name')!r}: meta.lakeport.profile "
                f"{name!r} is not a resource profile in platform.yaml (have: {known})"
            )
        return name
