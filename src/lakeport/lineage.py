"""OpenLineage run events for what a Dagster run builds, sent where platform.yaml says.

One `RunLineage` per op (a step of a Dagster run) sends, through openlineage-python's
client, a START and a COMPLETE or FAIL for each job the op runs: each dbt model
(lakeport.dbt_lineage), each Python asset that uses the lakehouse resource, and each
Iceberg commit. Every event's parent run facet is the Dagster run (its run id and job
name), so a lineage backend groups them under the run.

Datasets are the catalog's tables: name = the Iceberg identifier (`schema.table`),
namespace = one for the catalog (`Platform.lineage_dataset_namespace`), never the run's
DuckDB scratch file, so a table is one dataset across runs, pods and engines. Each carries
OpenLineage's catalog facet (iceberg, the catalog's type, name and warehouse) and, where
the columns are known, a schema facet; an Iceberg commit's output carries the snapshot id
as its version.

Sending never fails a run. The first event the transport cannot deliver (endpoint
unreachable, refused, timed out) becomes one warning on the run, and the op sends no more:
a down lineage backend costs a run one timeout, not one per event.
"""

import importlib.metadata
import re
import threading
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from lakeport.credentials import LINEAGE_TOKEN_ENV, optional_secret
from lakeport.platform import Platform

if TYPE_CHECKING:
    from openlineage.client import OpenLineageClient
    from openlineage.client.event_v2 import InputDataset, OutputDataset, RunEvent

# A URI naming what produced the events (OpenLineage's `producer`), with its version.
PRODUCER = f"urn:lakeport:{importlib.metadata.version('lakeport')}"
# OpenLineage's JobTypeJobFacet.integration for the jobs lakeport itself reports.
INTEGRATION = "LAKEPORT"
# POST attempts for one event before the op stops sending (openlineage-python retries
# with urllib3's Retry; its default, 5 with backoff, would hold a run ~10 s per event).
HTTP_RETRIES = 2

Field = tuple[str, str]  # (column name, type)


class RunLineage:
    """The OpenLineage events of one op of one Dagster run."""

    def __init__(self, platform: Platform, run_id: str, job_name: str, log):
        self.platform = platform
        self.log = log
        self.job_namespace = platform.lineage.job_namespace
        self.dataset_namespace = platform.lineage_dataset_namespace
        self.parent_run_id = run_id
        self.parent_job_name = job_name
        self._client: OpenLineageClient | None = None
        self._stopped = platform.lineage.transport.type == "noop"
        # Iceberg commits of small tables are written by worker threads (dbt_assets).
        self._lock = threading.Lock()

    @classmethod
    def for_context(cls, platform: Platform, context) -> "RunLineage":
        return cls(platform, context.run.run_id, context.run.job_name, context.log)

    @property
    def enabled(self) -> bool:
        """False when lineage is off, or sending already failed in this op."""
        return not self._stopped

    # --- events -----------------------------------------------------------------------

    def emit(self, event: "RunEvent") -> None:
        """Send one event; on the first failure warn on the run and send no more."""
        with self._lock:
            self._send(event)

    def _send(self, event: "RunEvent") -> None:
        if self._stopped:
            return
        try:
            if self._client is None:
                self._client = _client(self.platform)
            self._client.emit(event)
        except Exception as exc:  # any transport failure: the run must go on
            self._stopped = True
            self.log.warning(
                f"OpenLineage: could not send the {event.eventType.value} event of job "
                f"{event.job.name} to {self.destination()}: {self._safe(exc)}. The run goes "
                "on without lineage: this step sends no more OpenLineage events."
            )

    def run(self, job_name: str, job_type: str, *, integration: str = INTEGRATION) -> "JobRun":
        """Start one job run (its START is sent now)."""
        return JobRun(self, job_name, job_type, integration)

    def parent_facet(self):
        from openlineage.client.facet_v2 import parent_run

        return parent_run.ParentRunFacet(
            run=parent_run.Run(runId=self.parent_run_id),
            job=parent_run.Job(namespace=self.job_namespace, name=self.parent_job_name),
        )

    # --- datasets ---------------------------------------------------------------------

    def table_facets(self, fields: Iterable[Field] | None = None) -> dict:
        """The facets of a catalog table: where it is catalogued and, if known, its schema."""
        from openlineage.client.facet_v2 import catalog_dataset, schema_dataset

        catalog = self.platform.catalog
        facets: dict = {
            "catalog": catalog_dataset.CatalogDatasetFacet(
                framework="iceberg",
                type=catalog.type,
                name=catalog.name,
                warehouseUri=catalog.warehouse,
                producer=PRODUCER,
            )
        }
        fields = list(fields or ())
        if fields:
            facets["schema"] = schema_dataset.SchemaDatasetFacet(
                fields=[
                    schema_dataset.SchemaDatasetFacetFields(name=name, type=kind)
                    for name, kind in fields
                ],
                producer=PRODUCER,
            )
        return facets

    def input_table(self, identifier: str, fields: Iterable[Field] | None = None):
        from openlineage.client.event_v2 import InputDataset

        return InputDataset(
            namespace=self.dataset_namespace, name=identifier, facets=self.table_facets(fields)
        )

    def output_table(
        self,
        identifier: str,
        fields: Iterable[Field] | None = None,
        *,
        row_count: int | None = None,
        snapshot_id: int | None = None,
    ):
        from openlineage.client.event_v2 import OutputDataset
        from openlineage.client.facet_v2 import (
            dataset_version_dataset,
            output_statistics_output_dataset,
        )

        facets = self.table_facets(fields)
        if snapshot_id is not None:
            facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
                datasetVersion=str(snapshot_id), producer=PRODUCER
            )
        output_facets = {}
        if row_count is not None:
            output_facets["outputStatistics"] = (
                output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                    rowCount=row_count, producer=PRODUCER
                )
            )
        return OutputDataset(
            namespace=self.dataset_namespace,
            name=identifier,
            facets=facets,
            outputFacets=output_facets,
        )

    def written_table(self, published):
        """The output of one Iceberg commit (lakeport.iceberg_publish.Published): the table
        at the snapshot written, with its columns and the rows written."""
        return self.output_table(
            published.identifier,
            published.fields,
            row_count=published.row_count,
            snapshot_id=published.snapshot_id,
        )

    # --- where events go, said without secrets ---------------------------------------

    def destination(self) -> str:
        transport = self.platform.lineage.transport
        if transport.type == "http":
            return f"{transport.url.rstrip('/')}/{transport.endpoint.lstrip('/')}"
        return f"file {transport.log_file_path}"

    def _safe(self, exc: Exception) -> str:
        text = f"{type(exc).__name__}: {exc}"
        token = optional_secret(LINEAGE_TOKEN_ENV)
        if token:
            text = text.replace(token, "***")
        # requests' messages hold whole reprs of connection objects: keep the reason.
        return re.sub(r"<urllib3[^>]*>", "", text)[:500]


class JobRun:
    """One OpenLineage run of one job: START when made, then `complete` or `fail`."""

    def __init__(self, lineage: RunLineage, name: str, job_type: str, integration):
        self.lineage = lineage
        self.name = name
        self.run_id = str(uuid.uuid4())
        self.job_facets = {}
        if not lineage.enabled:
            return  # lineage off: nothing to import or send
        from openlineage.client.facet_v2 import job_type_job

        self.job_facets = {
            "jobType": job_type_job.JobTypeJobFacet(
                processingType="BATCH",
                integration=integration,
                jobType=job_type,
                producer=PRODUCER,
            )
        }
        self._send("START", [])

    def complete(
        self, outputs: Sequence["OutputDataset"] = (), inputs: Sequence["InputDataset"] = ()
    ) -> None:
        self._send("COMPLETE", list(outputs), inputs=inputs)

    def fail(self, error: BaseException | str) -> None:
        if not self.lineage.enabled:
            return
        from openlineage.client.facet_v2 import error_message_run

        message = str(error)[:2000]
        facet = error_message_run.ErrorMessageRunFacet(
            message=message, programmingLanguage="python", producer=PRODUCER
        )
        self._send("FAIL", [], {"errorMessage": facet})

    def _send(
        self, state: str, outputs: list, run_facets: dict | None = None, inputs: Sequence = ()
    ) -> None:
        if not self.lineage.enabled:
            return
        from openlineage.client.event_v2 import Job, Run, RunEvent, RunState

        self.lineage.emit(
            RunEvent(
                eventType=RunState[state],
                eventTime=datetime.now(UTC).isoformat(),
                run=Run(
                    runId=self.run_id,
                    facets={"parent": self.lineage.parent_facet(), **(run_facets or {})},
                ),
                job=Job(
                    namespace=self.lineage.job_namespace, name=self.name, facets=self.job_facets
                ),
                inputs=list(inputs),
                outputs=outputs,
                producer=PRODUCER,
            )
        )


def commit_lineage(lineage: RunLineage, identifier: str, write) -> "object":
    """Run `write()` (one Iceberg commit, returning lakeport.iceberg_publish.Published) as
    an OpenLineage job run of its own: `<identifier>.iceberg_commit`, whose output is the
    table at the snapshot written."""
    job = lineage.run(f"{identifier}.iceberg_commit", "ICEBERG_COMMIT")
    try:
        published = write()
    except BaseException as exc:
        job.fail(exc)
        raise
    if lineage.enabled:
        job.complete([lineage.written_table(published)])
    return published


def _client(platform: Platform) -> "OpenLineageClient":
    """openlineage-python's client with the transport platform.yaml names."""
    from openlineage.client import OpenLineageClient

    transport = platform.lineage.transport
    if transport.type == "http":
        from openlineage.client.transport.http import (
            ApiKeyTokenProvider,
            HttpConfig,
            HttpTransport,
            TokenProvider,
        )

        token = optional_secret(LINEAGE_TOKEN_ENV)
        if transport.token_secret is not None and not token:
            raise RuntimeError(
                f"lineage.transport.tokenSecret is set but {LINEAGE_TOKEN_ENV} is empty in "
                "this process (on Kubernetes the chart sets it from that Secret)"
            )
        config = HttpConfig(
            url=transport.url,
            endpoint=transport.endpoint,
            timeout=transport.timeout_seconds,
            auth=ApiKeyTokenProvider({"apiKey": token}) if token else TokenProvider({}),
            retry={
                "total": HTTP_RETRIES,
                "connect": HTTP_RETRIES,
                "read": HTTP_RETRIES,
                "backoff_factor": 0.2,
                "status_forcelist": [500, 502, 503, 504],
                "allowed_methods": ["POST"],
            },
        )
        return OpenLineageClient(transport=HttpTransport(config))
    from openlineage.client.transport.file import FileConfig, FileTransport

    return OpenLineageClient(
        transport=FileTransport(FileConfig(log_file_path=transport.log_file_path, append=True))
    )
