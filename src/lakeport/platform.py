"""The platform model: the schema of `platform.yaml`.

`platform.yaml` is both the Helm values file of charts/lakeport and the input of this
package, so keys follow Helm's camelCase convention and unknown keys are errors (a typo
must not be silently ignored). `values.schema.json` is generated from this model.
Defaults here are the chart's defaults (`charts/lakeport/values.yaml` is generated too).

Every field carries a docstring right below it: pydantic makes it the field's description
(use_attribute_docstrings), which `lakeport schema` writes into values.schema.json (an
editor's hover) and as the comment above each key of values.yaml.
"""

import ipaddress
import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from lakeport.quantities import _QUANTITY_RE, cpu_cores, is_quantity, memory_bytes

DEFAULT_PROFILE = "transform"


class Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        validate_default=True,
        # The docstring under a field is its description in values.schema.json.
        use_attribute_docstrings=True,
    )


# --- value types -----------------------------------------------------------------------


def _check_quantity(value):
    if not is_quantity(value):
        raise PydanticCustomError(
            "quantity",
            "must be a Kubernetes quantity such as 512Mi, 2Gi, 2 or 500m",
        )
    return value


Quantity = Annotated[
    str | int | float,
    AfterValidator(_check_quantity),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": _QUANTITY_RE.pattern},
                {"type": "number", "minimum": 0},
            ]
        }
    ),
]

_DNS_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DNS_SUBDOMAIN_RE = re.compile(rf"^{_DNS_LABEL}(?:\.{_DNS_LABEL})*$")
_HOSTNAME_RE = re.compile(
    r"^(?:\*\.)?[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _check_k8s_name(value: str) -> str:
    if len(value) > 253 or not _DNS_SUBDOMAIN_RE.match(value):
        raise PydanticCustomError(
            "k8s_name", "must be a Kubernetes name: lowercase letters, digits, '-' and '.'"
        )
    return value


def _check_hostname(value: str) -> str:
    if _is_ip(value):
        return value
    if len(value) > 253 or not _HOSTNAME_RE.match(value):
        raise PydanticCustomError("hostname", "must be a DNS hostname or an IP address")
    return value


def _check_bucket(value: str) -> str:
    if not _BUCKET_RE.match(value) or ".." in value or _is_ip(value):
        raise PydanticCustomError(
            "bucket_name",
            "must be an S3 bucket name: 3-63 lowercase letters, digits, '.' or '-', "
            "starting and ending with a letter or digit",
        )
    return value


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False


def _check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PydanticCustomError("http_url", "must be an http:// or https:// URL")
    if parts.password:
        raise PydanticCustomError(
            "literal_secret", "must not carry a password; use a Secret reference"
        )
    return value


K8sName = Annotated[str, AfterValidator(_check_k8s_name)]
Hostname = Annotated[str, AfterValidator(_check_hostname)]
BucketName = Annotated[str, AfterValidator(_check_bucket)]
HttpUrl = Annotated[str, AfterValidator(_check_http_url)]
Port = Annotated[int, Field(ge=1, le=65535)]
# A key of a Secret's data (Kubernetes: alphanumerics, '-', '_' and '.').
SecretKey = Annotated[str, Field(min_length=1, pattern=r"^[-._a-zA-Z0-9]+$")]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
# A PostgreSQL role or database name lakeport accepts: lowercase, unquoted, 63 at most.
PgIdentifier = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]


# --- building blocks -------------------------------------------------------------------


class SecretRef(Model):
    """A key of a Kubernetes Secret. Literal secret values are never accepted."""

    secret_name: K8sName
    """The Secret's name, in the namespace of the pods that read it."""
    key: SecretKey
    """The key within the Secret."""

    @model_validator(mode="before")
    @classmethod
    def _reject_literal(cls, data):
        if not isinstance(data, dict):
            raise PydanticCustomError(
                "literal_secret",
                "must be a Secret reference {secretName, key}; literal secret values are "
                "not allowed",
            )
        return data


class Image(Model):
    """An image by tag, by digest, or both (`repository:tag@digest`: the digest decides)."""

    repository: Annotated[str, Field(min_length=1, pattern=r"^[^\s:@]+(:\d+)?[^\s:@]*$")]
    """The image's repository, with its registry host (and port) unless it is on Docker
    Hub, e.g. ghcr.io/acme/finance."""
    tag: Annotated[str, Field(min_length=1, pattern=r"^[\w][\w.-]{0,127}$")] | None = None
    """The image's tag; may be left out when digest is given."""
    digest: Annotated[str, Field(pattern=r"^sha256:[a-f0-9]{64}$")] | None = None
    """The image's digest (sha256:<64 hex digits>); with a tag too, the digest decides."""
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    """Kubernetes' imagePullPolicy for the containers that run this image."""

    @model_validator(mode="after")
    def _tag_or_digest(self):
        if self.tag is None and self.digest is None:
            raise PydanticCustomError("image_reference", "an image needs a tag or a digest")
        return self

    @property
    def reference(self) -> str:
        """What a pod's `image:` says (the chart's `lakeport.image` renders the same)."""
        tag = f":{self.tag}" if self.tag else ""
        digest = f"@{self.digest}" if self.digest else ""
        return f"{self.repository}{tag}{digest}"


class Images(Model):
    lakeport: Image = Image(repository="lakeport", tag="0.1.0")
    """lakeport's own image: webserver, daemon, the hook Jobs (migrate, Polaris bootstrap),
    helm test pods and the wait-for-postgres init containers."""
    postgres: Image = Image(repository="postgres", tag="16.6-bookworm")
    """The in-chart PostgreSQL server (postgres.enabled)."""
    polaris: Image = Image(repository="apache/polaris", tag="1.2.0-incubating")
    """The in-chart Apache Polaris server (polaris.enabled)."""
    localstack: Image = Image(repository="localstack/localstack", tag="4.14.0")
    """The in-chart LocalStack S3 (localstack.enabled)."""
    polaris_admin_tool: Image = Image(
        repository="apache/polaris-admin-tool", tag="1.2.0-incubating"
    )
    """Bootstraps the Polaris realm (schema + root principal) in Postgres before the server
    starts; keep its tag equal to `polaris`'s."""


class ResourceList(Model):
    cpu: Quantity | None = None
    """CPU as a Kubernetes quantity in cores (2, 0.5 or 500m); unset: none."""
    memory: Quantity | None = None
    """Memory as a Kubernetes quantity in bytes (512Mi, 2Gi); unset: none."""


def _check_limits_cover_requests(requests: ResourceList, limits: ResourceList) -> None:
    for name, to_number in (("cpu", cpu_cores), ("memory", memory_bytes)):
        request, limit = getattr(requests, name), getattr(limits, name)
        if request is not None and limit is not None and to_number(request) > to_number(limit):
            raise PydanticCustomError(
                "limit_below_request",
                "limits.{name} ({limit}) is below requests.{name} ({request})",
                {"name": name, "limit": limit, "request": request},
            )


class Resources(Model):
    requests: ResourceList = ResourceList()
    """What the scheduler reserves for the container on its node."""
    limits: ResourceList = ResourceList()
    """The most the container may use: over its memory limit it is OOMKilled, its CPU is
    throttled at the CPU limit. Never below requests."""

    @model_validator(mode="after")
    def _limits_cover_requests(self):
        _check_limits_cover_requests(self.requests, self.limits)
        return self


def _resources(cpu: str, memory: str, cpu_limit: str, memory_limit: str) -> Resources:
    return Resources(
        requests=ResourceList(cpu=cpu, memory=memory),
        limits=ResourceList(cpu=cpu_limit, memory=memory_limit),
    )


# --- scheduling ---------------------------------------------------------------------------

# Kubernetes label keys ([prefix/]name) and values.
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
LabelKey = Annotated[
    str, Field(max_length=316, pattern=rf"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?{_LABEL_NAME}$")
]
LabelValue = Annotated[str, Field(max_length=63, pattern=rf"^({_LABEL_NAME})?$")]


class Toleration(Model):
    """A Kubernetes toleration: the pod may run on nodes with a matching taint."""

    key: str | None = None
    """The taint key it tolerates; empty with operator Exists: every taint."""
    operator: Literal["Exists", "Equal"] = "Equal"
    """Equal: the taint's value must be `value`; Exists: any value."""
    value: str | None = None
    """The taint value it tolerates (operator Equal)."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """The taint effect it tolerates; empty: every effect."""
    toleration_seconds: Annotated[int, Field(ge=0)] | None = None
    """With effect NoExecute: seconds the pod stays on a node once the taint is added;
    unset: for good."""


class Scheduling(Model):
    """Where a pod may run and what it carries for the cluster's own tooling: the keys a
    node pool, a priority class or a private registry needs (Kubernetes' own names)."""

    node_selector: dict[LabelKey, LabelValue] = {}
    """Node labels a node must carry for the pod to run on it (the pod's nodeSelector)."""
    tolerations: list[Toleration] = []
    """Taints the pod tolerates, e.g. those of a dedicated node pool."""
    affinity: dict = {}
    """A Kubernetes Affinity object (nodeAffinity, podAffinity, podAntiAffinity), as is."""
    priority_class_name: K8sName | None = None
    """The pod's PriorityClass; unset: the cluster's default."""
    pod_annotations: dict[str, str] = {}
    """Annotations on the pod itself (not its Deployment or Job), e.g. for a log shipper."""
    pod_labels: dict[LabelKey, LabelValue] = {}
    """Labels added to the pod, e.g. for cost allocation."""
    image_pull_secrets: list[K8sName] = []
    """Names of the Secrets with the registry credentials the pod's images are pulled with
    (a private registry)."""


# --- resource profiles ------------------------------------------------------------------


class DuckDBOverrides(Model):
    """Explicit DuckDB settings for a profile; anything unset is derived in the run pod."""

    memory_limit_fraction: Annotated[float, Field(gt=0, lt=1)] | None = None
    """DuckDB's memory_limit as this fraction (0 to 1) of the memory the run's container
    has left when the run starts; unset: 0.8, or 0.65 where that would give over 352 MiB
    or threads is above 1. Not with memoryLimit."""
    memory_limit: Quantity | None = None
    """DuckDB's memory_limit as a quantity (e.g. 1536Mi), below the profile's
    limits.memory. Not with memoryLimitFraction."""
    threads: Annotated[int, Field(ge=1, le=1024)] | None = None
    """DuckDB's threads; unset: as many as the CPU limit gives, kept so that each thread
    has 256 to 352 MiB of memory_limit."""
    max_temp_directory_size: Quantity | None = None
    """How much DuckDB may spill (its max_temp_directory_size, a quantity), below
    spillVolumeSize; unset: 90% of spillVolumeSize."""

    @model_validator(mode="after")
    def _one_memory_setting(self):
        if self.memory_limit_fraction is not None and self.memory_limit is not None:
            raise PydanticCustomError(
                "duckdb_memory_twice",
                "set memoryLimitFraction or memoryLimit, not both",
            )
        return self


class ResourceProfile(Model):
    """A resource profile, under its name (what a run's lakeport/profile tag says): what
    one run pod gets, requests/limits, a spill volume, DuckDB settings."""

    description: str = ""
    """What the profile is for, for people reading platform.yaml; nothing reads it."""
    requests: ResourceList
    """The run container's requests."""
    limits: ResourceList
    """The run container's limits; limits.memory is required: DuckDB's memory limit is
    derived from it."""
    spill_volume_size: Quantity = "10Gi"
    """Size limit (a quantity) of the run pod's DuckDB spill volume, an emptyDir: a pod
    that writes more to it is evicted."""
    duckdb: DuckDBOverrides = DuckDBOverrides()
    """DuckDB settings to use instead of the derived ones."""
    scheduling: Scheduling = Scheduling()
    """Where this profile's run pods go, e.g. `large` on the big-memory node pool."""

    @model_validator(mode="after")
    def _consistent(self):
        if self.limits.memory is None:
            raise PydanticCustomError(
                "memory_limit_required",
                "limits.memory is required: DuckDB's memory limit is derived from it",
            )
        _check_limits_cover_requests(self.requests, self.limits)
        limit = memory_bytes(self.limits.memory)
        if self.duckdb.memory_limit is not None and memory_bytes(self.duckdb.memory_limit) >= limit:
            raise PydanticCustomError(
                "duckdb_over_pod",
                "duckdb.memoryLimit ({value}) must be below limits.memory ({limit})",
                {"value": self.duckdb.memory_limit, "limit": self.limits.memory},
            )
        temp = self.duckdb.max_temp_directory_size
        if temp is not None and memory_bytes(temp) >= memory_bytes(self.spill_volume_size):
            raise PydanticCustomError(
                "spill_too_small",
                "spillVolumeSize ({volume}) must be larger than duckdb.maxTempDirectorySize "
                "({temp})",
                {"volume": self.spill_volume_size, "temp": temp},
            )
        return self


def _default_profiles() -> dict[str, ResourceProfile]:
    return {
        DEFAULT_PROFILE: ResourceProfile(
            description="Default for dbt runs: a few GiB, DuckDB spills beyond that.",
            requests=ResourceList(cpu="500m", memory="1Gi"),
            limits=ResourceList(cpu="2", memory="2Gi"),
            spill_volume_size="10Gi",
        ),
        "large": ResourceProfile(
            description="Heavy transforms: more memory and threads, a bigger spill volume.",
            requests=ResourceList(cpu="1", memory="4Gi"),
            limits=ResourceList(cpu="4", memory="8Gi"),
            spill_volume_size="50Gi",
        ),
    }


# --- Dagster ------------------------------------------------------------------------------


class Webserver(Model):
    replicas: Annotated[int, Field(ge=1)] = 1
    """Pods of the UI; more than one also gets a PodDisruptionBudget (one down at a time)."""
    port: Port = 3000
    """The port the UI listens on and its Service serves (the read-only UI's too)."""
    log_level: LogLevel = "INFO"
    """The webserver's Dagster log level (--dagster-log-level)."""
    resources: Resources = _resources("100m", "512Mi", "1", "1Gi")
    """The webserver container's requests and limits."""
    scheduling: Scheduling = Scheduling()
    """Where the webserver's pods run."""


class ReadOnlyWebserver(Model):
    """A second UI that can look but not launch, terminate or change anything
    (dagster-webserver --read-only), for a wider audience on its own ingress host. It
    serves on dagster.webserver.port with its log level."""

    enabled: bool = False
    """Run the read-only UI (Deployment and Service <release>-webserver-read-only)."""
    replicas: Annotated[int, Field(ge=1)] = 1
    """Pods of the read-only UI; more than one also gets a PodDisruptionBudget."""
    host: Hostname | None = None
    """Its own host on the release's ingress (ingress.enabled), beside ingress.host."""
    resources: Resources = _resources("100m", "512Mi", "1", "1Gi")
    """The read-only webserver container's requests and limits."""
    scheduling: Scheduling = Scheduling()
    """Where the read-only UI's pods run."""


class TickRetention(Model):
    """Days the instance keeps ticks of each outcome; -1 keeps them forever."""

    skipped: Annotated[int, Field(ge=-1)] = 7
    """Days skipped ticks are kept (-1: forever)."""
    success: Annotated[int, Field(ge=-1)] = 30
    """Days successful ticks are kept (-1: forever)."""
    failure: Annotated[int, Field(ge=-1)] = 90
    """Days failed ticks are kept (-1: forever)."""
    started: Annotated[int, Field(ge=-1)] = 30
    """Days ticks that started and never finished are kept (-1: forever)."""


class Retention(Model):
    """How long schedule, sensor and automation ticks stay in Postgres. Dagster's own
    default keeps every tick but skipped ones forever; an every-30s sensor then writes
    ~2,900 rows a day that nobody reads."""

    schedule: TickRetention = TickRetention()
    """How long schedule ticks are kept."""
    sensor: TickRetention = TickRetention()
    """How long sensor ticks are kept."""
    auto_materialize: TickRetention = TickRetention()
    """How long automation (auto-materialize) ticks are kept."""


class Daemon(Model):
    log_level: LogLevel = "INFO"
    """The daemon's log level (--log-level)."""
    heartbeat_tolerance_seconds: Annotated[int, Field(ge=30)] = 300
    """Seconds a daemon may go without a heartbeat before it counts as unhealthy
    (DAGSTER_DAEMON_HEARTBEAT_TOLERANCE); the pod's liveness check uses it."""
    resources: Resources = _resources("100m", "512Mi", "1", "1Gi")
    """The daemon container's requests and limits."""
    scheduling: Scheduling = Scheduling()
    """Where the daemon's pod runs."""


class RunMonitoring(Model):
    """Dagster's run monitoring (dagster.yaml run_monitoring), done by the daemon."""

    enabled: bool = True
    """The daemon watches runs and fails those whose worker never started or died."""
    start_timeout_seconds: Annotated[int, Field(ge=10)] = 300
    """A run still starting after this many seconds is marked failed."""
    cancel_timeout_seconds: Annotated[int, Field(ge=10)] = 180
    """A run still canceling after this many seconds is marked canceled."""
    max_resume_run_attempts: Annotated[int, Field(ge=0)] = 0
    """Times the daemon starts a new worker for a run whose worker died, instead of failing
    it (0: it fails; `lakeport dev` always uses 0)."""
    poll_interval_seconds: Annotated[int, Field(ge=5)] = 60
    """Seconds between the daemon's checks of runs in progress."""


class RunRetries(Model):
    """Dagster's run retries (dagster.yaml run_retries)."""

    enabled: bool = True
    """The daemon launches a failed run again, up to maxRetries times."""
    max_retries: Annotated[int, Field(ge=0, le=10)] = 1
    """Retries of a failed run; a run's dagster/max_retries tag overrides it."""


class TagConcurrencyLimit(Model):
    """At most `limit` runs with this tag in progress at once; more wait in the queue."""

    key: Annotated[str, Field(min_length=1)]
    """The run tag counted."""
    value: str | None = None
    """Only runs whose tag has this value count; unset: every run with the tag counts."""
    limit: Annotated[int, Field(ge=0)]
    """How many such runs may be in progress at once."""


class RunQueue(Model):
    max_concurrent_runs: Annotated[int, Field(ge=-1)] = 4
    """Runs in progress at once across the instance; more wait in the queue (-1: no
    limit)."""
    tag_concurrency_limits: list[TagConcurrencyLimit] = []
    """Limits on runs in progress by run tag, e.g. one backfill at a time."""


class RunLauncher(Model):
    job_namespace: K8sName | None = None
    """The namespace run Jobs go to; empty: the release namespace. The chart grants the
    launcher a Role there and puts the platform ConfigMaps there too."""
    finished_job_ttl_seconds: Annotated[int, Field(ge=0)] = 3600
    """Seconds a finished run Job and its pod (with its logs) stay before Kubernetes
    deletes them (ttlSecondsAfterFinished)."""
    default_profile: K8sName = DEFAULT_PROFILE
    """The resource profile of a run that names none (no lakeport/profile tag); a key of
    resourceProfiles."""
    backoff_limit: Annotated[int, Field(ge=0, le=10)] = 0
    """Pod retries Kubernetes gives a run Job (backoffLimit); 0: a failed pod fails the run,
    and run retries decide whether it runs again."""
    platform_config_map: K8sName | None = None
    """The ConfigMap holding the effective platform.yaml; the chart fills it in (leave it
    empty). Every profile's run_k8s_config mounts it, because a run's profile tag
    replaces the launcher's whole volume list (SHALLOW merge)."""
    run_pod_labels: dict[LabelKey, LabelValue] = {}
    """The labels every run pod carries whatever its profile (the release's, which the
    NetworkPolicy admits); the chart fills them in (leave empty). dagster-k8s puts the
    launcher's `labels` in run_k8s_config's pod_template_spec_metadata, which a profile
    tag that sets pod labels replaces (SHALLOW merge), so every profile carries them."""


class Dagster(Model):
    service_account_annotations: dict[str, str] = {}
    """On the ServiceAccount of Dagster's pods and run pods, e.g. the IAM role for IRSA
    (eks.amazonaws.com/role-arn) that gives them S3 without keys."""
    webserver: Webserver = Webserver()
    """The Dagster UI."""
    read_only_webserver: ReadOnlyWebserver = ReadOnlyWebserver()
    """A second UI that can look but not change anything, on its own ingress host."""
    daemon: Daemon = Daemon()
    """The Dagster daemon: schedules, sensors, the run queue, run monitoring and retries."""
    run_launcher: RunLauncher = RunLauncher()
    """Run Jobs: their namespace, lifetime, retries and default resource profile."""
    run_monitoring: RunMonitoring = RunMonitoring()
    """Dagster's run monitoring: failing runs whose worker never started or died."""
    run_retries: RunRetries = RunRetries()
    """Dagster's run retries: launching failed runs again."""
    run_queue: RunQueue = RunQueue()
    """How many runs may be in progress at once, overall and by tag."""
    retention: Retention = Retention()
    """How long schedule, sensor and automation ticks are kept."""


# --- notifications ------------------------------------------------------------------------


class Notifications(Model):
    failure_webhook_secret: SecretRef | None = None
    """The run-failure webhook's URL (chat webhooks carry their token in it), read by every
    code location's sensor as LAKEPORT_FAILURE_WEBHOOK_URL. A location's secretEnv of
    that name gives it a webhook of its own."""


# --- lineage ------------------------------------------------------------------------------


class LineageTransport(Model):
    """Where OpenLineage events go, named as in OpenLineage's own openlineage.yml: `noop`
    (no events), `http` (an OpenLineage endpoint such as Marquez) or `file` (one JSON
    event per line, appended)."""

    type: Literal["noop", "http", "file"] = "noop"
    """noop (no events), http (POST to an OpenLineage endpoint) or file (append JSON lines)."""
    url: HttpUrl | None = None
    """http: the endpoint's base URL; events are POSTed to url + endpoint, with a Bearer
    token from tokenSecret when it is given. Required with type http."""
    endpoint: Annotated[str, Field(pattern=r"^[\w.\-/]*$")] = "api/v1/lineage"
    """http: the path appended to url."""
    token_secret: SecretRef | None = None
    """http: the Secret key holding the Bearer token; only the http transport sends it."""
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 5
    """http: seconds per POST; a run waits at most this long (times 3 tries) before it
    stops sending."""
    log_file_path: Annotated[str, Field(min_length=1)] | None = None
    """file: a path in the run's container (or on the machine, for `lakeport dev`).
    Required with type file."""


class Lineage(Model):
    """OpenLineage run events for what runs build (lakeport.lineage)."""

    transport: LineageTransport = LineageTransport()
    """Where the events go."""
    job_namespace: Annotated[str, Field(min_length=1, pattern=r"^[\w.\-:/]+$")] = "lakeport"
    """The OpenLineage job namespace of every job lakeport reports (Dagster jobs, dbt
    models, Python assets, Iceberg commits)."""
    dataset_namespace: Annotated[str, Field(min_length=1, pattern=r"^[\w.\-+]+://\S+$")] | None = (
        None
    )
    """The dataset namespace of the catalog's tables, named by their Iceberg identifiers.
    Empty: iceberg://<catalog.name>. Give each platform its own when two share a
    lineage backend."""


# --- code locations -----------------------------------------------------------------------

# Names that may hold a secret: such an env var must come from a Secret, and lakeport.config
# never echoes the value of a field named so. The chart's code-locations.yaml checks the
# same pattern.
SECRET_LOOKING = re.compile(r"pass|secret|token|credential|private|api_?key", re.IGNORECASE)
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
# A DNS label short enough that `<release, 40 at most>-code-<name>` is a Service name
# (63 at most).
LocationName = Annotated[str, Field(max_length=17, pattern=rf"^{_DNS_LABEL}$")]
ModuleName = Annotated[str, Field(pattern=r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")]


class SecretEnv(Model):
    """An environment variable whose value is a key of a Kubernetes Secret."""

    name: EnvName
    """The environment variable's name."""
    secret_name: K8sName
    """The Secret holding the value, in the namespace of the pods that read it."""
    key: SecretKey
    """The key within the Secret."""


def _check_plain_env(env: dict[str, str]) -> dict[str, str]:
    for name in env:
        if SECRET_LOOKING.search(name):
            raise PydanticCustomError(
                "literal_secret",
                "{name} looks like a secret: give it with secretEnv (a Secret reference), "
                "never as a literal value",
                {"name": name},
            )
    return env


class CodeLocation(Model):
    """One team's code: a gRPC code server in the team's image, and the runs it starts.

    Webserver and daemon never import it. Runs of this location run in its image, with
    its env and secretEnv, and none of another location's.
    """

    name: LocationName
    """The location's name in Dagster and in its Service, <release>-code-<name>: a DNS
    label of 17 characters at most, unique among codeLocations."""
    image: Image
    """The team's image: the code server runs in it, and so do this location's runs."""
    module: ModuleName
    """The Python module whose `defs` (a dagster.Definitions) the code server serves; a
    `dg` project's `<package>.definitions` is one."""
    port: Port = 4000
    """The gRPC port the code server listens on and its Service serves."""
    replicas: Annotated[int, Field(ge=1)] = 1
    """Code server pods; more than one also gets a PodDisruptionBudget."""
    resources: Resources = _resources("100m", "512Mi", "1", "1Gi")
    """The code server container's requests and limits (its runs get their profile's)."""
    env: Annotated[dict[EnvName, str], AfterValidator(_check_plain_env)] = {}
    """Plain environment variables of the code server and its runs; anything secret goes
    in secretEnv."""
    secret_env: list[SecretEnv] = []
    """Environment variables of the code server and its runs, each from a Secret's key."""
    profiles: list[K8sName] = []
    """The resource profiles this location's runs may use (empty: every profile); must
    include dagster.runLauncher.defaultProfile."""
    scheduling: Scheduling = Scheduling()
    """For the code server's pods (its runs take their profile's)."""


def _default_code_locations() -> list[CodeLocation]:
    return [
        CodeLocation(
            name="demo",
            image=Image(repository="lakeport", tag="0.1.0"),
            module="lakeport_demo.definitions",
        )
    ]


# --- storage, catalog, services ---------------------------------------------------------------


class ComputeLogs(Model):
    """Steps' stdout and stderr, uploaded to S3 (Dagster's S3ComputeLogManager)."""

    bucket: BucketName = "lakeport-compute-logs"
    """The S3 bucket the logs go to (the in-chart LocalStack creates it)."""
    prefix: Annotated[str, Field(pattern=r"^[\w.\-/]*$")] = "compute-logs"
    """The key prefix of the logs in the bucket."""
    upload_interval_seconds: Annotated[int, Field(ge=1, le=3600)] = 30
    """Seconds between uploads of a running step's logs so far (upload_interval)."""
    local_dir: Annotated[str, Field(min_length=1)] = "/tmp/dagster-compute-logs"
    """The directory where each process writes logs before they are uploaded."""
    skip_empty_files: bool = True
    """Do not upload empty log files."""


class ObjectStorage(Model):
    """The S3 service of the warehouse and the compute logs, for every pod."""

    endpoint: HttpUrl | None = None
    """The S3 endpoint URL. Empty: the in-chart LocalStack when it is enabled, else AWS S3
    itself."""
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")] = "us-east-1"
    """The S3 region (AWS_REGION of every pod)."""
    path_style: bool = True
    """Path-style addressing (endpoint/bucket/key), which LocalStack and most S3-compatible
    servers need; false: virtual-hosted style (bucket.endpoint/key)."""
    credentials_secret: "S3CredentialsSecret | None" = None
    """The Secret with an S3 key pair. Empty: the pods' own identity (IRSA / workload
    identity) gives S3 access."""


class S3CredentialsSecret(Model):
    """An S3 access key pair in a Kubernetes Secret."""

    secret_name: K8sName
    """The Secret's name, in the namespace of the pods that read it."""
    access_key_id_key: str = "AWS_ACCESS_KEY_ID"
    """The key of the Secret holding the access key id."""
    secret_access_key_key: str = "AWS_SECRET_ACCESS_KEY"
    """The key of the Secret holding the secret access key."""

    @model_validator(mode="before")
    @classmethod
    def _reject_literal(cls, data):
        return SecretRef._reject_literal(data)


ObjectStorage.model_rebuild()


class RestCatalog(Model):
    """An Iceberg REST catalog: the in-chart Polaris, or one at uri."""

    uri: HttpUrl | None = None
    """The catalog's base URL. Empty: the in-chart Polaris service (required when
    polaris.enabled is false)."""
    credentials_secret: SecretRef | None = None
    """client_id:client_secret of the Polaris principal (written by the bootstrap Job).
    Empty: the chart's Secret (required when polaris.enabled is false)."""
    scope: str = "PRINCIPAL_ROLE:ALL"
    """The OAuth2 scope of the catalog token the credential is exchanged for."""


class SqlCatalog(Model):
    """pyiceberg's SQL catalog: one machine, no Polaris. Path relative to dev.dataDir."""

    sqlite_path: Annotated[str, Field(min_length=1)] = "catalog/iceberg.db"
    """The SQLite file of the catalog, relative to dev.dataDir."""


class SnapshotRetention(Model):
    """How long a table's snapshots stay, for tables that do not say themselves. Each
    lakeport write expires what this lets go, in its own commit; a table's own Iceberg
    properties (history.expire.max-snapshot-age-ms, history.expire.min-snapshots-to-keep)
    win. Defaults are Iceberg's."""

    max_age_days: Annotated[float, Field(gt=0)] = 5
    """Snapshots younger than this stay: how far back time travel reaches."""
    min_snapshots: Annotated[int, Field(ge=1)] = 1
    """The newest this many snapshots of a table stay, however old."""


def _check_warehouse(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "s3" or not parts.netloc:
        raise PydanticCustomError("warehouse", "must be an s3://bucket/path URI")
    _check_bucket(parts.netloc)
    return value


class Catalog(Model):
    """The Iceberg catalog every table is registered in."""

    type: Literal["rest", "sql"] = "rest"
    """rest: an Iceberg REST catalog (catalog.rest); sql: pyiceberg's SQL catalog in a
    SQLite file, for one machine (catalog.sql)."""
    name: K8sName = "lakeport"
    """The catalog's name (in Polaris, the bootstrap Job creates it); also the default
    lineage dataset namespace, iceberg://<name>."""
    warehouse: Annotated[str, AfterValidator(_check_warehouse)] = "s3://lakeport-warehouse/"
    """Where the tables' data and metadata files go: an s3://bucket/path URI (the in-chart
    LocalStack creates the bucket)."""
    rest: RestCatalog = RestCatalog()
    """The REST catalog, with type rest."""
    sql: SqlCatalog = SqlCatalog()
    """The SQL catalog, with type sql."""
    snapshot_retention: SnapshotRetention = SnapshotRetention()
    """How long table snapshots stay before lakeport's writes expire them."""

    @property
    def warehouse_bucket(self) -> str:
        return urlsplit(self.warehouse).netloc


class Postgres(Model):
    """The PostgreSQL of Dagster's storage and Polaris' metastore."""

    enabled: bool = True
    """true: a StatefulSet in the chart. false: an external server at host:port."""
    host: Hostname | None = None
    """The external server's DNS name or IP address; required when enabled is false (with
    enabled, the chart's own Service is used)."""
    port: Port = 5432
    """The port lakeport and Polaris connect to (the in-chart Service's port)."""
    user: PgIdentifier = "lakeport"
    """The role Dagster and Polaris connect as (the in-chart server creates it)."""
    dagster_database: PgIdentifier = "dagster"
    """The database of Dagster's run, event log and schedule storage."""
    polaris_database: PgIdentifier = "polaris"
    """The database of Polaris' metastore (the in-chart server creates it)."""
    password_secret: SecretRef | None = None
    """The Secret key holding the user's password. Empty with enabled=true: the chart
    generates a Secret once and keeps it on upgrade. Required when enabled is false."""
    ssl_mode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = (
        "prefer"
    )
    """The sslmode (libpq's values) of Dagster's connections and of Polaris' JDBC URL."""
    storage_size: Quantity = "8Gi"
    """The size (a quantity) of the in-chart server's data volume."""
    storage_class_name: K8sName | None = None
    """The StorageClass of that volume; unset: the cluster's default."""
    resources: Resources = _resources("100m", "256Mi", "1", "1Gi")
    """The in-chart server's requests and limits."""

    @model_validator(mode="after")
    def _external_needs_host(self):
        if not self.enabled and self.host is None:
            raise PydanticCustomError(
                "external_postgres", "host is required when enabled is false (external Postgres)"
            )
        if not self.enabled and self.password_secret is None:
            raise PydanticCustomError(
                "external_postgres",
                "passwordSecret is required when enabled is false (external Postgres)",
            )
        return self


class Polaris(Model):
    """Apache Polaris in the chart, the Iceberg REST catalog."""

    enabled: bool = True
    """Run Polaris in the chart; false: catalog.rest.uri names another catalog."""
    realm: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")] = "POLARIS"
    """The Polaris realm the chart bootstraps and lakeport uses."""
    port: Port = 8181
    """The Polaris Service's port."""
    principal: K8sName = "dagster"
    """The Polaris principal of Dagster and its runs (the bootstrap Job creates it)."""
    root_credentials_secret: SecretRef | None = None
    """The realm's root credentials (client_id:client_secret). Empty: the chart generates
    them once and keeps them."""
    bootstrap_backoff_limit: Annotated[int, Field(ge=0, le=20)] = 6
    """Pod retries (backoffLimit) of the bootstrap Job that runs after install and upgrade."""
    service_account_annotations: dict[str, str] = {}
    """On Polaris' own ServiceAccount: Polaris writes table metadata to the warehouse, e.g.
    the IAM role for IRSA (eks.amazonaws.com/role-arn)."""
    resources: Resources = _resources("250m", "512Mi", "2", "1Gi")
    """Requests and limits of the Polaris container and of its realm-bootstrap init
    container."""


class LocalStack(Model):
    """LocalStack's S3 in the chart, for clusters without an S3 service."""

    enabled: bool = True
    """Run LocalStack in the chart. It keeps objects in memory only: they are gone when its
    pod restarts."""
    port: Port = 4566
    """The LocalStack Service's port."""
    resources: Resources = _resources("100m", "512Mi", "1", "1Gi")
    """The LocalStack container's requests and limits."""


class IngressTls(Model):
    """One TLS entry of the Ingress: a certificate and the hosts it covers."""

    secret_name: K8sName
    """The TLS Secret (certificate and key)."""
    hosts: list[Hostname] = []
    """The hosts the certificate covers."""


class Ingress(Model):
    """An Ingress for the UI (and the read-only UI's host)."""

    enabled: bool = False
    """Render the Ingress."""
    class_name: K8sName | None = None
    """The IngressClass; unset: the cluster's default."""
    host: Hostname | None = None
    """The UI's host; unset: every host."""
    path: Annotated[str, Field(pattern=r"^/")] = "/"
    """The UI's path; other than "/", the webserver serves under it (--path-prefix)."""
    path_type: Literal["Prefix", "Exact", "ImplementationSpecific"] = "Prefix"
    """Kubernetes' pathType of that path."""
    tls: list[IngressTls] = []
    """TLS entries; when any lists hosts, one must list ingress.host."""
    annotations: dict[str, str] = {}
    """Annotations of the Ingress, e.g. for the ingress controller or cert-manager."""


class Dev(Model):
    """`make dev` only: where the one-machine platform keeps its state."""

    data_dir: Annotated[str, Field(min_length=1)] = ".dev"
    """The directory (relative: to the working directory) of the one-machine platform's
    Postgres, S3, Dagster and run state."""
    cgroup_limits: bool = True
    """Run workers in a cgroup sized by their profile (root on Linux only)."""


# --- the whole file -------------------------------------------------------------------------


class Platform(Model):
    """The whole of `platform.yaml`."""

    images: Images = Images()
    """The images of the platform's own pods (each code location names its own)."""
    dagster: Dagster = Dagster()
    """Dagster: the UI, the daemon, run Jobs, the run queue and retention."""
    code_locations: Annotated[list[CodeLocation], Field(min_length=1)] = Field(
        default_factory=_default_code_locations
    )
    """The teams' code: one gRPC code server each, in the team's image (at least one)."""
    resource_profiles: dict[K8sName, ResourceProfile] = Field(default_factory=_default_profiles)
    """What a run pod gets, by profile name; a run picks one with its lakeport/profile
    tag. Must define 'transform'."""
    compute_logs: ComputeLogs = ComputeLogs()
    """Where steps' stdout and stderr go (S3)."""
    object_storage: ObjectStorage = ObjectStorage()
    """The S3 service of the warehouse and the compute logs."""
    catalog: Catalog = Catalog()
    """The Iceberg catalog and its warehouse."""
    postgres: Postgres = Postgres()
    """The PostgreSQL of Dagster and Polaris: in the chart, or external."""
    polaris: Polaris = Polaris()
    """Apache Polaris in the chart (the REST catalog)."""
    localstack: LocalStack = LocalStack()
    """LocalStack's S3 in the chart."""
    ingress: Ingress = Ingress()
    """The Ingress of the UI."""
    notifications: Notifications = Notifications()
    """Run-failure notifications."""
    lineage: Lineage = Lineage()
    """OpenLineage events of what runs build."""
    dev: Dev = Dev()
    """`make dev` (one machine) only."""

    @model_validator(mode="after")
    def _cross_checks(self):
        if DEFAULT_PROFILE not in self.resource_profiles:
            raise _field_error(
                ("resourceProfiles",),
                None,
                f"must define the '{DEFAULT_PROFILE}' profile (the default for runs)",
            )
        default = self.dagster.run_launcher.default_profile
        if default not in self.resource_profiles:
            raise _field_error(
                ("dagster", "runLauncher", "defaultProfile"),
                default,
                f"names no profile in resourceProfiles (have: {', '.join(self.resource_profiles)})",
            )
        self._check_code_locations(default)
        self._check_lineage()
        if self.catalog.type == "rest" and not self.polaris.enabled and not self.catalog.rest.uri:
            raise _field_error(
                ("catalog", "rest", "uri"),
                None,
                "is required when polaris.enabled is false",
            )
        if self.catalog.type == "rest" and not self.polaris.enabled and (
            self.catalog.rest.credentials_secret is None
        ):
            raise _field_error(
                ("catalog", "rest", "credentialsSecret"),
                None,
                "is required when polaris.enabled is false",
            )
        read_only = self.dagster.read_only_webserver
        if self.ingress.enabled and read_only.enabled and not read_only.host:
            raise _field_error(
                ("dagster", "readOnlyWebserver", "host"),
                None,
                "is required when ingress.enabled is true: the read-only UI gets its own host",
            )
        if read_only.host and read_only.host == self.ingress.host:
            raise _field_error(
                ("dagster", "readOnlyWebserver", "host"),
                read_only.host,
                "must differ from ingress.host (that host is the full UI's)",
            )
        if self.ingress.enabled and self.ingress.tls and self.ingress.host:
            covered = {h for t in self.ingress.tls for h in t.hosts}
            if covered and self.ingress.host not in covered:
                raise _field_error(
                    ("ingress", "tls"),
                    sorted(covered),
                    f"no TLS entry covers ingress.host {self.ingress.host!r}",
                )
        return self

    def _check_code_locations(self, default_profile: str) -> None:
        seen: dict[str, int] = {}
        for i, location in enumerate(self.code_locations):
            if location.name in seen:
                raise _field_error(
                    ("codeLocations", str(i), "name"),
                    location.name,
                    f"is also the name of codeLocations[{seen[location.name]}]; "
                    "code location names must be unique",
                )
            seen[location.name] = i
            for j, profile in enumerate(location.profiles):
                if profile not in self.resource_profiles:
                    raise _field_error(
                        ("codeLocations", str(i), "profiles", str(j)),
                        profile,
                        "names no profile in resourceProfiles "
                        f"(have: {', '.join(self.resource_profiles)})",
                    )
            if location.profiles and default_profile not in location.profiles:
                raise _field_error(
                    ("codeLocations", str(i), "profiles"),
                    location.profiles,
                    f"must include the default profile {default_profile!r} "
                    "(dagster.runLauncher.defaultProfile): a run that asks for none gets it",
                )
            names = [e.name for e in location.secret_env] + list(location.env)
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise _field_error(
                    ("codeLocations", str(i), "secretEnv"),
                    twice,
                    "sets an environment variable twice (in env and secretEnv, or twice "
                    "in secretEnv)",
                )

    def _check_lineage(self) -> None:
        transport = self.lineage.transport
        where = ("lineage", "transport")
        if transport.type == "http" and transport.url is None:
            raise _field_error((*where, "url"), None, "is required when type is http")
        if transport.type == "file" and transport.log_file_path is None:
            raise _field_error((*where, "logFilePath"), None, "is required when type is file")
        if transport.type != "http" and transport.token_secret is not None:
            raise _field_error(
                (*where, "tokenSecret"),
                None,
                f"is only sent by the http transport (type is {transport.type})",
            )

    @property
    def lineage_dataset_namespace(self) -> str:
        """The OpenLineage namespace of the catalog's tables: one for the catalog, so a
        table's dataset is the same in every run and from every engine."""
        return self.lineage.dataset_namespace or f"iceberg://{self.catalog.name}"

    def code_location(self, name: str) -> CodeLocation:
        for location in self.code_locations:
            if location.name == name:
                return location
        known = ", ".join(loc.name for loc in self.code_locations)
        raise KeyError(f"no code location {name!r} in platform.yaml (have: {known})")

    def allowed_profiles(self, location_name: str | None) -> list[str] | None:
        """The profiles runs of this location may use; None: any (or a location this
        platform file does not list, e.g. one loaded by `dagster dev` directly)."""
        for location in self.code_locations:
            if location.name == location_name:
                return location.profiles or None
        return None

    def profile_name(self, name: str | None = None) -> str:
        """The profile a run with this `lakeport/profile` tag (None: none) runs under."""
        return name or self.dagster.run_launcher.default_profile

    def profile(self, name: str | None = None) -> ResourceProfile:
        name = self.profile_name(name)
        try:
            return self.resource_profiles[name]
        except KeyError:
            raise UnknownProfileError(name, sorted(self.resource_profiles)) from None


class UnknownProfileError(KeyError):
    def __init__(self, name: str, known: list[str]):
        super().__init__(name)
        self.name, self.known = name, known

    def __str__(self) -> str:
        known = ", ".join(self.known)
        return f"unknown resource profile {self.name!r}; platform.yaml defines: {known}"


class FieldError(ValueError):
    """A cross-field problem that belongs to a specific dotted path, not the model root."""

    def __init__(self, loc: tuple[str, ...], value, message: str):
        super().__init__(message)
        self.loc, self.value, self.message = loc, value, message


def _field_error(loc, value, message) -> FieldError:
    return FieldError(tuple(loc), value, message)
