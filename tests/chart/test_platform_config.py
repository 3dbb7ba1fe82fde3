"""The effective platform file the chart mounts: accepted by lakeport, and the one source
for the launcher's default profile."""

import copy

import boto3
import pytest
import yaml
from chart_render import (
    ENVIRONMENTS,
    NAMESPACE,
    dagster_yaml,
    effective_platform_text,
    find,
    one,
    platform_file,
    pod_spec,
    render,
    render_env,
)

from lakeport.config import parse_platform
from lakeport.profiles import run_k8s_config

DAGSTER_WORKLOADS = ("lakeport-webserver", "lakeport-daemon", "lakeport-code-demo")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_effective_platform_is_valid_for_lakeport(env):
    platform = parse_platform(effective_platform_text(render_env(env)), f"{env} (rendered)")
    # What the chart provides is filled in; what the file set stays.
    assert platform.dagster.run_launcher.job_namespace == NAMESPACE
    assert platform.dagster.run_launcher.platform_config_map == "lakeport-platform"
    assert platform.catalog.rest.uri == (
        f"http://lakeport-polaris.{NAMESPACE}.svc:8181/api/catalog"
    )
    assert platform.catalog.rest.credentials_secret.secret_name == "lakeport-polaris-principal"
    if env == "kind":
        assert platform.object_storage.endpoint == f"http://lakeport-localstack.{NAMESPACE}.svc:4566"
        assert platform.object_storage.credentials_secret.secret_name == (
            "lakeport-localstack-credentials"
        )
        assert platform.postgres.host == f"lakeport-postgres.{NAMESPACE}.svc"
        assert platform.postgres.password_secret.secret_name == "lakeport-postgres"
        assert platform.polaris.root_credentials_secret.secret_name == "lakeport-polaris-root"
    else:
        # Real S3 through IRSA, RDS: nothing in-chart replaces what the file says.
        assert platform.object_storage.endpoint is None
        assert platform.object_storage.credentials_secret is None
        assert platform.postgres.host == "lakeport.cluster-abc123.eu-west-1.rds.amazonaws.com"
        assert platform.postgres.password_secret.secret_name == "lakeport-rds"
        assert platform.polaris.root_credentials_secret.secret_name == "lakeport-polaris-root"


# A default profile without spillVolumeSize: a new profile (values.yaml has no defaults
# for its name) and one whose chart default a null removed. ResourceProfile gives both 10Gi.
SMALL_PROFILE = {"requests": {"cpu": "250m", "memory": "512Mi"},
                 "limits": {"cpu": "1", "memory": "1Gi"}}
LAUNCHER_VALUES = {
    **{env: (env, None) for env in ENVIRONMENTS},
    "new default profile without spillVolumeSize": ("kind", {
        "resourceProfiles": {"small": SMALL_PROFILE},
        "dagster": {"runLauncher": {"defaultProfile": "small"}}}),
    "spillVolumeSize removed by null": ("cloud", {
        "resourceProfiles": {"transform": {"spillVolumeSize": None}}}),
}


def _render_over(env: str, override: dict | None, tmp_path):
    """`helm template -f <env> [-f override]`, and the Platform `lakeport validate` reads
    from the same files laid over each other (a null kept, to remove the default)."""
    data = yaml.safe_load(platform_file(env).read_text())
    if override is None:
        return render_env(env), parse_platform(yaml.safe_dump(data))
    values = tmp_path / "override.yaml"
    values.write_text(yaml.safe_dump(override))
    return render(str(platform_file(env)), str(values)), parse_platform(
        yaml.safe_dump(_overlay(data, override))
    )


def _overlay(base, override):
    if not isinstance(base, dict) or not isinstance(override, dict):
        return override
    return {**base, **{key: _overlay(base.get(key), value) for key, value in override.items()}}


@pytest.mark.parametrize(("env", "override"), LAUNCHER_VALUES.values(), ids=LAUNCHER_VALUES)
def test_launcher_default_profile_is_profiles_run_k8s_config(env, override, tmp_path):
    """No drift: the instance's run_k8s_config is lakeport.profiles' for the default profile."""
    objects, validated = _render_over(env, override, tmp_path)
    platform = parse_platform(effective_platform_text(objects))
    rendered = copy.deepcopy(dagster_yaml(objects)["run_launcher"]["config"]["run_k8s_config"])
    expected = run_k8s_config(platform, platform.dagster.run_launcher.default_profile)
    # The launcher schema has no merge_behavior; the run tag's SHALLOW governs the merge.
    assert expected.pop("merge_behavior") == "SHALLOW"
    # What every run needs whatever its profile, in keys a profile tag never replaces.
    env_vars = rendered["container_config"].pop("env")
    security = rendered["pod_spec_config"].pop("security_context")
    assert rendered["pod_spec_config"].pop("automount_service_account_token") is False
    job_spec = rendered.pop("job_spec_config")
    assert rendered == expected
    names = {e["name"] for e in env_vars}
    assert names >= {"LAKEPORT_POSTGRES_PASSWORD", "LAKEPORT_CATALOG_CREDENTIAL"}
    assert security["run_as_non_root"] is True
    assert job_spec == {
        "ttl_seconds_after_finished": platform.dagster.run_launcher.finished_job_ttl_seconds,
        "backoff_limit": platform.dagster.run_launcher.backoff_limit,
    }
    # And the spill volume is the one of the values as lakeport validate reads them, not
    # only as the chart's own effective platform says.
    (spill, _platform_file) = rendered["pod_spec_config"]["volumes"]
    assert [spill] == run_k8s_config(validated)["pod_spec_config"]["volumes"]


def test_launcher_follows_a_changed_default_profile(tmp_path):
    # The drift check above must see a different profile when the default changes.
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"dagster": {"runLauncher": {"defaultProfile": "large"}}}))
    from chart_render import platform_file, render

    objects = render(str(platform_file("kind")), str(values))
    platform = parse_platform(effective_platform_text(objects))
    rendered = dagster_yaml(objects)["run_launcher"]["config"]["run_k8s_config"]
    assert rendered["container_config"]["resources"] == (
        run_k8s_config(platform, "large")["container_config"]["resources"]
    )
    assert rendered["container_config"]["resources"]["limits"]["memory"] == "4Gi"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_dagster_pod_mounts_the_platform_file(env):
    objects = render_env(env)
    env_cm = one(objects, "ConfigMap", "lakeport-env")["data"]
    assert env_cm["LAKEPORT_PLATFORM_FILE"] == "/etc/lakeport/platform.yaml"
    for name in DAGSTER_WORKLOADS:
        spec = pod_spec(one(objects, "Deployment", name))
        (container,) = spec["containers"]
        assert {"configMapRef": {"name": "lakeport-env"}} in container["envFrom"], name
        mount = next(m for m in container["volumeMounts"] if m["name"] == "lakeport-platform")
        assert mount["mountPath"] == "/etc/lakeport"
        volume = next(v for v in spec["volumes"] if v["name"] == "lakeport-platform")
        assert volume["configMap"]["name"] == "lakeport-platform"
        template = one(objects, "Deployment", name)["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        assert {"checksum/instance", "checksum/platform", "checksum/workspace"} <= set(annotations)


def test_config_changes_roll_the_pods(tmp_path):
    from chart_render import platform_file, render

    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"computeLogs": {"prefix": "elsewhere"}}))
    before = render_env("kind")
    after = render(str(platform_file("kind")), str(values))
    for name in DAGSTER_WORKLOADS:
        a = one(before, "Deployment", name)["spec"]["template"]["metadata"]["annotations"]
        b = one(after, "Deployment", name)["spec"]["template"]["metadata"]["annotations"]
        assert a["checksum/instance"] != b["checksum/instance"], name
        assert a["checksum/platform"] != b["checksum/platform"], name


def _s3_request_url(aws_config_text, endpoint, tmp_path, monkeypatch):
    """The URL a boto3 client configured by this AWS config file would send HEAD bucket to."""
    config_file = tmp_path / "aws-config"
    config_file.write_text(aws_config_text)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config_file))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    client = boto3.session.Session().client("s3", endpoint_url=endpoint)

    class Sent(Exception):
        pass

    def stop(request, **_):
        raise Sent(request.url)

    client.meta.events.register("before-send.s3.*", stop)
    with pytest.raises(Sent) as sent:
        client.head_bucket(Bucket="lakeport-compute-logs")
    return str(sent.value)


def test_s3_addressing_follows_object_storage_path_style(tmp_path, monkeypatch):
    """Every boto3 client in a lakeport pod (S3ComputeLogManager included) reads the AWS
    config file the chart mounts, so objectStorage.pathStyle decides the addressing."""
    objects = render_env("kind")
    endpoint = parse_platform(effective_platform_text(objects)).object_storage.endpoint
    aws_config = one(objects, "ConfigMap", "lakeport-platform")["data"]["aws-config"]
    assert _s3_request_url(aws_config, endpoint, tmp_path, monkeypatch) == (
        f"{endpoint}/lakeport-compute-logs"
    )

    from chart_render import platform_file, render

    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"objectStorage": {"pathStyle": False}}))
    virtual = one(render(str(platform_file("kind")), str(values)), "ConfigMap", "lakeport-platform")
    url = _s3_request_url(virtual["data"]["aws-config"], endpoint, tmp_path, monkeypatch)
    assert url.startswith("http://lakeport-compute-logs.lakeport-localstack.")


def test_cloud_has_no_localstack_wiring():
    objects = render_env("cloud")
    aws_config = one(objects, "ConfigMap", "lakeport-platform")["data"]["aws-config"]
    assert "addressing_style = virtual" in aws_config
    assert "AWS_ENDPOINT_URL_S3" not in one(objects, "ConfigMap", "lakeport-env")["data"]
    assert find(objects, "Secret", "lakeport-localstack-credentials") == []


def test_the_chart_fills_a_code_location_with_the_models_defaults(tmp_path):
    """Helm applies no defaults inside list items: the chart's effective platform fills a
    location's unset keys itself, with the values lakeport.platform.CodeLocation has."""
    from lakeport.platform import CodeLocation

    minimal = {"name": "team", "module": "team.definitions",
               "image": {"repository": "team", "tag": "1"}}
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"codeLocations": [minimal]}))
    objects = render(str(platform_file("kind")), str(values))
    (rendered,) = yaml.safe_load(effective_platform_text(objects))["codeLocations"]
    model = CodeLocation.model_validate(minimal).model_dump(mode="json", by_alias=True)
    for key in ("port", "replicas", "resources", "env", "secretEnv", "profiles"):
        assert rendered[key] == model[key], key
    assert rendered["image"]["pullPolicy"] == model["image"]["pullPolicy"]


def _container_resources(resources) -> dict:
    """A platform `Resources` as a container's `resources:` (lakeport.resources renders
    the same): quantities as text, unset ones left out, an empty requests/limits too."""
    dumped = {kind: {k: str(v) for k, v in getattr(resources, kind).model_dump().items()
                     if v is not None} for kind in ("requests", "limits")}
    return {kind: quantities for kind, quantities in dumped.items() if quantities}


def _limits_cover_requests(container_resources: dict) -> bool:
    """What the API server checks of a container: no limit below its request."""
    from lakeport.quantities import cpu_cores, memory_bytes

    requests = container_resources.get("requests", {})
    limits = container_resources.get("limits", {})
    return all(
        to_number(requests[name]) <= to_number(limits[name])
        for name, to_number in (("cpu", cpu_cores), ("memory", memory_bytes))
        if name in requests and name in limits
    )


@pytest.mark.parametrize(
    "resources",
    [
        # Above the default limits (1 CPU, 1Gi): the chart's defaults would make a pod the API
        # server rejects, while the model has no limits here.
        {"requests": {"cpu": "2"}},
        {"requests": {"memory": "2Gi"}},
        {"limits": {"memory": "2Gi"}},
        {"requests": {"cpu": "500m"}, "limits": {"memory": "768Mi"}},
        {},
    ],
    ids=["requests.cpu only", "requests.memory only", "limits.memory only",
         "one of each", "empty"],
)
def test_a_code_locations_own_resources_are_the_models(tmp_path, resources):
    """A location that sets `resources` has exactly those: CodeLocation's default is the
    whole block, and a quantity it leaves out is unset (ResourceList: "unset: none"), as
    `lakeport validate` reads the same file. Its Deployment and the effective platform the
    chart mounts say the same, and the API server would accept the pod."""
    from lakeport.platform import CodeLocation

    location = {"name": "team", "module": "team.definitions",
                "image": {"repository": "team", "tag": "1"}, "resources": resources}
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"codeLocations": [location]}))
    objects = render(str(platform_file("kind")), str(values))

    kind = yaml.safe_load(platform_file("kind").read_text())
    validated = parse_platform(yaml.safe_dump({**kind, "codeLocations": [location]}))
    model = validated.code_location("team").resources
    assert model == CodeLocation.model_validate(location).resources

    (rendered,) = yaml.safe_load(effective_platform_text(objects))["codeLocations"]
    assert CodeLocation.model_validate(rendered).resources == model
    (container,) = pod_spec(one(objects, "Deployment", "lakeport-code-team"))["containers"]
    assert container["resources"] == _container_resources(model)
    assert _limits_cover_requests(container["resources"]), container["resources"]


# The workloads with a `resources:` block under a key of values.yaml, and their containers.
RESOURCED_WORKLOADS = {
    ("dagster", "webserver"): ("Deployment", "lakeport-webserver"),
    ("dagster", "readOnlyWebserver"): ("Deployment", "lakeport-webserver-read-only"),
    ("dagster", "daemon"): ("Deployment", "lakeport-daemon"),
    ("postgres",): ("StatefulSet", "lakeport-postgres"),
    ("polaris",): ("Deployment", "lakeport-polaris"),
    ("localstack",): ("Deployment", "lakeport-localstack"),
}


@pytest.mark.parametrize(
    "resources",
    [{"requests": {"cpu": "100m"}}, {"limits": None}, {"requests": {"memory": None}}, None],
    ids=["requests.cpu only", "limits removed", "requests.memory removed", "removed"],
)
def test_each_workloads_resources_are_the_models(tmp_path, resources):
    """Helm lays a partial `resources:` over values.yaml's, as lakeport validate does
    (lakeport.config.helm_merge); a null removes a chart default, and what is left the
    model gives its own default (`resources: null`: the workload's default block)."""
    override = {"dagster": {"readOnlyWebserver": {"enabled": True}}}
    for path in RESOURCED_WORKLOADS:
        node = override
        for key in path:
            node = node.setdefault(key, {})
        node["resources"] = resources
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(override))
    objects = render(str(values))
    validated = parse_platform(yaml.safe_dump(override))
    for path, (kind, name) in RESOURCED_WORKLOADS.items():
        model = validated
        for key in path:
            model = getattr(model, {"readOnlyWebserver": "read_only_webserver"}.get(key, key))
        spec = pod_spec(one(objects, kind, name))
        for container in spec.get("initContainers", []) + spec["containers"]:
            if container["name"] == "wait-for-postgres":
                continue
            assert container["resources"] == _container_resources(model.resources), (
                f"{name}/{container['name']}"
            )
