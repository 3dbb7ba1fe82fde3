"""`lakeport.LakeportDbtComponent`: a team's dbt project on lakeport, as a Dagster Component.

Dagster 1.13 projects declare their definitions in `defs/<name>/defs.yaml` files naming a
component type, checked with `dg check defs` and listed with `dg list defs`. This component
builds exactly what `lakeport.lakehouse.build_lakehouse_definitions` builds (the dbt
assets and their checks, the job, the skipping schedule, one automation sensor per
profile, the failure webhook, lakeport's dbt and Iceberg resources), from attributes that
cover the factory's arguments:

    type: lakeport.LakeportDbtComponent
    attributes:
      project: ../../dbt_project          # relative to this defs.yaml
      partitions_start_date: "2025-01-01"
      group_profiles: {marts: large}
      schedule_cron: "0 4 * * *"
      python_assets: [my_team.bronze:BRONZE_ASSETS]
      translation:
        tags: {team: analytics}

Customising it follows dagster-dbt's DbtProjectComponent: `translation` (templated with
`node`, the dbt node's properties) adjusts each asset spec after lakeport's translator,
and a subclass can override `get_asset_spec`. Every other Component feature
(`post_processing`, `requirements`) is Dagster's own. The platform settings come from
the process's platform file (LAKEPORT_PLATFORM_FILE), as for the factory's code location.

The component is found by `dg list components` through the `dagster_dg_cli.registry_modules`
entry point that names the `lakeport` package (pyproject.toml); dagster discovers it
with `dir()` over that module (dagster/components/core/package_entry.py,
get_package_objects_in_module, at 1.13.27), which `lakeport/__init__.py` answers lazily.
"""

import importlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import dagster as dg
from dagster.components.component.component_scaffolder import Scaffolder
from dagster.components.component_scaffolding import scaffold_component
from dagster.components.scaffold.scaffold import ScaffoldRequest, scaffold_with
from dagster.components.utils.translation import TranslationFn, TranslationFnResolver
from dagster_dbt import DbtProject
from pydantic import BaseModel, Field

from lakeport.dbt_assets import DEFAULT_RETRY_POLICY
from lakeport.platform import Platform
from lakeport.translator import LakeportDbtTranslator


@dataclass
class RetryPolicyArgs(dg.Resolvable):
    """A dbt op's retry policy (dagster.RetryPolicy) for failures outside the SQL."""

    max_retries: int = DEFAULT_RETRY_POLICY.max_retries
    delay: float | None = DEFAULT_RETRY_POLICY.delay
    backoff: Literal["exponential", "linear"] | None = "exponential"

    def policy(self) -> dg.RetryPolicy:
        backoff = dg.Backoff(self.backoff.upper()) if self.backoff else None
        return dg.RetryPolicy(max_retries=self.max_retries, delay=self.delay, backoff=backoff)


class ScaffoldParams(BaseModel):
    """`dg scaffold defs lakeport.LakeportDbtComponent PATH --project-path DIR ...`"""

    project_path: str = Field(description="The dbt project's directory")
    partitions_start_date: str = Field(
        default_factory=lambda: date.today().replace(month=1, day=1).isoformat(),
        description="First day of the daily partitions (default: January 1st this year)",
    )


class LakeportDbtComponentScaffolder(Scaffolder[ScaffoldParams]):
    """Writes a defs.yaml naming the dbt project relative to itself, as `project` reads it."""

    @classmethod
    def get_scaffold_params(cls) -> type[ScaffoldParams]:
        return ScaffoldParams

    def scaffold(self, request: ScaffoldRequest[ScaffoldParams]) -> None:
        project = Path(request.params.project_path).resolve()
        if not (project / "dbt_project.yml").is_file():
            raise ValueError(f"--project-path {request.params.project_path}: no dbt_project.yml "
                             f"in {project}")
        relative = os.path.relpath(project, request.target_path.resolve())
        scaffold_component(request, {
            "project": relative,
            "partitions_start_date": request.params.partitions_start_date,
        })


@scaffold_with(LakeportDbtComponentScaffolder)
@dataclass
class LakeportDbtComponent(dg.Component, dg.Resolvable):
    """A dbt project on lakeport: its models as assets on the Iceberg catalog, its tests as
    asset checks, one job and schedule, automation per resource profile."""

    project: Annotated[
        str, dg.Resolver.default(description="The dbt project's directory, relative to this "
                                 "defs.yaml or absolute. Its manifest is prepared at build time "
                                 "(`lakeport prepare-dbt`).")
    ]
    partitions_start_date: Annotated[
        str, dg.Resolver.default(description="First day (YYYY-MM-DD) of the daily partitions "
                                 "of the models with meta.lakeport.partition_column.")
    ]
    job_name: str = "lakehouse_job"
    schedule_name: str = "lakehouse_schedule"
    schedule_cron: Annotated[
        str, dg.Resolver.default(description="When the schedule starts the job (cron, UTC).")
    ] = "0 4 * * *"
    job_profile: Annotated[
        str | None, dg.Resolver.default(description="Resource profile of the job's runs; "
                                        "default: the largest any of its assets asks for.")
    ] = None
    group_profiles: Annotated[
        dict[str, str], dg.Resolver.default(description="Resource profile per asset group "
                                            "(the folder under models/), e.g. {marts: large}.")
    ] = field(default_factory=dict)
    retry_policy: Annotated[
        RetryPolicyArgs | None,
        dg.Resolver.default(description="Retries of the dbt ops for failures outside the SQL; "
                            "null turns them off."),
    ] = field(default_factory=RetryPolicyArgs)
    python_assets: Annotated[
        list[str], dg.Resolver.default(description="`module:attribute` references to lists of "
                                       "Python assets that join the job and the lineage.")
    ] = field(default_factory=list)
    translation: Annotated[
        TranslationFn[Mapping[str, Any]] | None,
        TranslationFnResolver(template_vars_for_translation_fn=lambda data: {"node": data}),
    ] = None

    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> dg.AssetSpec:
        """The asset spec of one dbt node: lakeport's, then `translation`. Override in a
        subclass to change it further (keep the key lakeport gives a stored table, or its
        Python writers and readers will not find it)."""
        spec = LakeportDbtTranslator.get_asset_spec(self._translator, manifest, unique_id, project)
        if self.translation is None:
            return spec
        return self.translation(spec, manifest["nodes"].get(unique_id)
                                or manifest["sources"][unique_id])

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        from lakeport.config import load_effective_platform

        return self.build_defs_for_platform(load_effective_platform(), context.path)

    def build_defs_for_platform(self, platform: Platform, base_dir: Path) -> dg.Definitions:
        """The definitions for `platform`, with `project` relative to `base_dir`."""
        from lakeport.lakehouse import build_lakehouse_definitions

        self._translator = _ComponentTranslator(self, platform, self.group_profiles)
        project_dir = Path(self.project)
        if not project_dir.is_absolute():
            project_dir = base_dir / project_dir
        return build_lakehouse_definitions(
            project_dir,
            platform,
            partitions_start_date=self.partitions_start_date,
            job_name=self.job_name,
            schedule_name=self.schedule_name,
            schedule_cron=self.schedule_cron,
            job_profile=self.job_profile,
            group_profiles=self.group_profiles,
            retry_policy=self.retry_policy.policy() if self.retry_policy else None,
            python_assets=python_assets(self.python_assets),
            translator=self._translator,
        )


def load_code_location(path_within_project: Path) -> dg.Definitions:
    """The definitions of the dg project holding `path_within_project`: every component
    of its defs folder, as `dagster.load_from_defs_folder` builds them, less the catalog
    of component types that function adds.

    load_from_defs_folder builds the project's root (ComponentRootComponent.build_defs,
    dagster/components/core/defs_module.py at 1.13.27), which merges in
    get_library_json_enriched_defs: it imports every module of every
    `dagster_dg_cli.registry_modules` entry point in the environment and serialises each
    component type's JSON schema into the repository's metadata, for the webserver's
    list of component types. Measured on the demo: 4.5 s of a code server's start, against
    1.5 s for building the components themselves (bench/codelocation_load.py). Building
    at the defs folder itself gives the same assets, checks, jobs, schedules, sensors and
    resources without it (tests/integration/test_demo_component.py holds that seam)."""
    from dagster.components.core.component_tree import ComponentTree

    tree = ComponentTree.for_project(path_within_project=path_within_project)
    return tree.build_defs(tree.defs_module_path)


class _ComponentTranslator(LakeportDbtTranslator):
    """lakeport's translator, asking the component for each spec (so a subclass's
    `get_asset_spec` and the `translation` attribute apply)."""

    def __init__(self, component: LakeportDbtComponent, platform, group_profiles):
        super().__init__(platform, group_profiles)
        self._component = component

    def get_asset_spec(self, manifest, unique_id, project):
        return self._component.get_asset_spec(manifest, unique_id, project)


def python_assets(references: Sequence[str]) -> list[dg.AssetsDefinition]:
    """The assets named by `module:attribute` references (each a list of assets or one)."""
    found: list[dg.AssetsDefinition] = []
    for reference in references:
        module_name, _, attribute = reference.partition(":")
        if not module_name or not attribute:
            raise ValueError(
                f"python_assets: {reference!r} is not `module:attribute` "
                "(e.g. my_team.bronze:BRONZE_ASSETS)"
            )
        value = getattr(importlib.import_module(module_name), attribute, None)
        if value is None:
            raise ValueError(f"python_assets: module {module_name!r} has no {attribute!r}")
        items = value if isinstance(value, list | tuple) else [value]
        for item in items:
            if not isinstance(item, dg.AssetsDefinition):
                raise ValueError(
                    f"python_assets: {reference!r} holds {type(item).__name__}, not Dagster "
                    "assets (@dg.asset)"
                )
            found.append(item)
    return found
