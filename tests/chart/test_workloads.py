"""What each workload runs and how it is wired."""

import json

import kubernetes_validate
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
    workloads,
)

from lakeport.config import parse_platform


def _grpc_params(container: dict, extra_env: dict | None = None) -> dict:
    """The options `dagster api grpc` resolves from this container's args and plain env,
    parsed by Dagster's own CLI (auto env prefix DAGSTER_CLI, as its entry point sets)."""
    from dagster._cli import ENV_PREFIX, cli

    argv = container["command"]
    assert argv[:3] == ["dagster", "api", "grpc"]
    env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    env.update(extra_env or {})
    import os

    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        root = cli.make_context("dagster", list(argv[1:]), auto_envvar_prefix=ENV_PREFIX,
                                resilient_parsing=False)
        _name, api, rest = cli.resolve_command(root, root._protected_args + root.args)
        api_ctx = api.make_context("api", rest, parent=root)
        _name, grpc, rest = api.resolve_command(api_ctx, api_ctx._protected_args + api_ctx.args)
        return grpc.make_context("grpc", rest, parent=api_ctx).params
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_code_servers_pass_their_runs_only_image_env_and_pull_policy(env):
    """dagster-io/dagster#13921: a code server's container context is merged into every
    run pod; with resources or volumes in it, it would replace the launcher's profile. A
    location's context holds its env (after the platform's own secret env, which it would
    otherwise replace) and its pull policy, nothing else."""
    objects = render_env(env)
    platform = parse_platform(effective_platform_text(objects))
    launcher = dagster_yaml(objects)["run_launcher"]["config"]["run_k8s_config"]
    platform_env = launcher["container_config"]["env"]
    for location in platform.code_locations:
        deployment = one(objects, "Deployment", f"lakeport-code-{location.name}")
        (container,) = pod_spec(deployment)["containers"]
        assert not {e["name"] for e in container.get("env", [])
                    if "CONTAINER_CONTEXT" in e["name"]}
        params = _grpc_params(container)
        context = json.loads(params["container_context"])
        assert list(context) == ["k8s"] and set(context["k8s"]) == {"env", "image_pull_policy"}
        env_vars = context["k8s"]["env"]
        assert env_vars[: len(platform_env)] == platform_env
        own = {e["name"]: e for e in env_vars[len(platform_env):]}
        assert set(own) == set(location.env) | {s.name for s in location.secret_env}
        assert not any("value" in own[s.name] for s in location.secret_env)
        assert context["k8s"]["image_pull_policy"] == location.image.pull_policy
        assert params["container_image"] == container["image"] == location.image.reference
        assert params["module_name"] == location.module
        assert params["location_name"] == location.name


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_webserver_and_daemon_reach_user_code_only_over_grpc(env):
    objects = render_env(env)
    workspace_cm = one(objects, "ConfigMap", "lakeport-dagster-workspace")
    workspace = yaml.safe_load(workspace_cm["data"]["workspace.yaml"])
    platform = parse_platform(effective_platform_text(objects))
    assert workspace == {"load_from": [
        {"grpc_server": {"host": f"lakeport-code-{loc.name}", "port": loc.port,
                         "location_name": loc.name}}
        for loc in platform.code_locations
    ]}
    for location in platform.code_locations:
        service = one(objects, "Service", f"lakeport-code-{location.name}")
        assert service["spec"]["ports"][0]["port"] == location.port
        assert service["spec"]["selector"]["app.kubernetes.io/component"] == (
            f"code-{location.name}"
        )
    for name in ("lakeport-webserver", "lakeport-daemon"):
        (container,) = pod_spec(one(objects, "Deployment", name))["containers"]
        command = container["command"]
        assert "/opt/dagster/workspace/workspace.yaml" in command
        assert not {"-m", "--module-name", "-f", "--python-file"} & set(command), name


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_probes_and_replicas(env):
    objects = render_env(env)
    web = one(objects, "Deployment", "lakeport-webserver")
    (c,) = pod_spec(web)["containers"]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["path"] == "/server_info"
    expected_replicas = 2 if env == "cloud" else 1
    assert web["spec"]["replicas"] == expected_replicas

    daemon = one(objects, "Deployment", "lakeport-daemon")
    assert daemon["spec"]["replicas"] == 1
    assert daemon["spec"]["strategy"] == {"type": "Recreate"}

    (code,) = pod_spec(one(objects, "Deployment", "lakeport-code-demo"))["containers"]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert code[probe]["exec"]["command"][:3] == ["dagster", "api", "grpc-health-check"]
        assert code[probe]["exec"]["command"][-1] == "4000"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_pods_run_as_non_root_except_localstack(env):
    for obj in workloads(render_env(env)):
        spec = pod_spec(obj)
        name = obj["metadata"]["name"]
        if name == "lakeport-localstack":
            continue
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for c in spec.get("initContainers", []) + spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, f"{name}/{c['name']}"
            assert sc["capabilities"]["drop"] == ["ALL"], f"{name}/{c['name']}"
            assert sc["readOnlyRootFilesystem"] is True, f"{name}/{c['name']}"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_migrate_runs_before_an_upgrade_with_the_new_instance_config(env):
    objects = render_env(env)
    job = one(objects, "Job", "lakeport-migrate")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-upgrade"
    (c,) = pod_spec(job)["containers"]
    assert c["command"] == ["dagster", "instance", "migrate"]
    hook_cm = one(objects, "ConfigMap", "lakeport-migrate")
    assert hook_cm["metadata"]["annotations"]["helm.sh/hook"] == "pre-upgrade"
    assert int(hook_cm["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        job["metadata"]["annotations"]["helm.sh/hook-weight"])
    # The instance's config without the run launcher (tests/chart/test_migrate_hook.py
    # runs it: the tokenless hook pod cannot build a K8sRunLauncher).
    instance = {k: v for k, v in dagster_yaml(objects).items() if k != "run_launcher"}
    assert yaml.safe_load(hook_cm["data"]["dagster.yaml"]) == instance
    mount = next(m for m in c["volumeMounts"] if m["name"] == "instance")
    assert mount["mountPath"] == "/opt/dagster/dagster_home/dagster.yaml"
    # On install Dagster's Postgres storages create the schema; pods wait for Postgres.
    for name in ("lakeport-webserver", "lakeport-daemon"):
        init = pod_spec(one(objects, "Deployment", name))["initContainers"]
        assert [i["name"] for i in init] == ["wait-for-postgres"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_polaris_keeps_state_in_postgres_and_is_bootstrapped(env):
    objects = render_env(env)
    spec = pod_spec(one(objects, "Deployment", "lakeport-polaris"))
    (server,) = spec["containers"]
    env_vars = {e["name"]: e for e in server["env"]}
    assert env_vars["POLARIS_PERSISTENCE_TYPE"]["value"] == "relational-jdbc"
    host = "lakeport-postgres.lakeport.svc" if env == "kind" else (
        "lakeport.cluster-abc123.eu-west-1.rds.amazonaws.com")
    ssl = "prefer" if env == "kind" else "require"
    assert env_vars["QUARKUS_DATASOURCE_JDBC_URL"]["value"] == (
        f"jdbc:postgresql://{host}:5432/polaris?sslmode={ssl}")
    assert "secretKeyRef" in env_vars["QUARKUS_DATASOURCE_PASSWORD"]["valueFrom"]
    assert env_vars["POLARIS_REALM_CONTEXT_REALMS"]["value"] == "POLARIS"
    # Tokens survive restarts: signed with a kept key read from a file.
    assert env_vars["POLARIS_AUTHENTICATION_TOKEN_BROKER_TYPE"]["value"] == "symmetric-key"
    key_file = env_vars["POLARIS_AUTHENTICATION_TOKEN_BROKER_SYMMETRIC_KEY_FILE"]["value"]
    mount = next(m for m in server["volumeMounts"] if m["name"] == "token-key")
    assert key_file == mount["mountPath"] + "/key"
    key_volume = next(v for v in spec["volumes"] if v["name"] == "token-key")
    assert key_volume["secret"]["secretName"] == "lakeport-polaris-token-key"
    realm = next(i for i in spec["initContainers"] if i["name"] == "bootstrap-realm")
    assert realm["image"] == "apache/polaris-admin-tool:1.2.0-incubating"
    assert "already been bootstrapped" in realm["command"][-1]
    root = {e["name"]: e for e in realm["env"]}["POLARIS_ROOT_CREDENTIAL"]
    assert root["valueFrom"]["secretKeyRef"]["name"] == "lakeport-polaris-root"

    job = one(objects, "Job", "lakeport-polaris-bootstrap")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-install,post-upgrade"
    assert job["spec"]["backoffLimit"] == 6
    (c,) = pod_spec(job)["containers"]
    assert c["command"] == ["python", "-m", "lakeport.polaris_bootstrap"]
    assert pod_spec(job)["serviceAccountName"] == "lakeport-polaris-bootstrap"


def test_postgres_creates_both_databases_and_keeps_its_volume():
    objects = render_env("kind")
    sts = one(objects, "StatefulSet", "lakeport-postgres")
    (c,) = pod_spec(sts)["containers"]
    env_vars = {e["name"]: e for e in c["env"]}
    assert env_vars["POSTGRES_DB"]["value"] == "dagster"
    assert env_vars["POSTGRES_USER"]["value"] == "lakeport"
    script = one(objects, "ConfigMap", "lakeport-postgres-init")["data"]["10-databases.sh"]
    assert "CREATE DATABASE polaris OWNER lakeport;" in script
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert pod_spec(sts)["securityContext"]["runAsUser"] == 999


def test_localstack_is_pinned_and_creates_the_buckets():
    objects = render_env("kind")
    (c,) = pod_spec(one(objects, "Deployment", "lakeport-localstack"))["containers"]
    assert c["image"] == "localstack/localstack:4.14.0"
    script = one(objects, "ConfigMap", "lakeport-localstack-init")["data"]["10-buckets.sh"]
    assert "for bucket in lakeport-warehouse lakeport-compute-logs; do" in script
    mount = next(m for m in c["volumeMounts"] if m["name"] == "init")
    # The script as one file, not the ConfigMap's directory, whose hidden `..<timestamp>/`
    # copy LocalStack's os.walk would run a second time (localstack#11430).
    assert mount["mountPath"] == "/etc/localstack/init/ready.d/10-buckets.sh"
    assert mount["subPath"] == "10-buckets.sh"


def test_localstack_is_ready_only_once_its_buckets_exist():
    """The readiness probe's bucket checks, run against a real S3 API (moto's server, one
    of its own: the buckets must start missing)."""
    import subprocess

    from lakeport.dev.ports import free_port
    from lakeport.dev.s3 import S3Server

    (c,) = pod_spec(one(render_env("kind"), "Deployment", "lakeport-localstack"))["containers"]
    command = c["readinessProbe"]["exec"]["command"][-1]
    clauses = [part.strip() for part in command.split("&&")]
    assert "_localstack/init/ready" in clauses[0]
    bucket_checks = clauses[1:]
    assert len(bucket_checks) == 2
    s3_server = S3Server(port=free_port())
    s3_server.start()
    try:
        probe = " && ".join(bucket_checks).replace("http://127.0.0.1:4566", s3_server.endpoint)
        assert subprocess.run(["sh", "-c", probe]).returncode != 0
        s3_server.ensure_buckets("lakeport-warehouse")
        assert subprocess.run(["sh", "-c", probe]).returncode != 0  # one of two is not enough
        s3_server.ensure_buckets("lakeport-compute-logs")
        assert subprocess.run(["sh", "-c", probe]).returncode == 0
    finally:
        s3_server.stop()


def test_ingress_from_values(tmp_path):
    kind = one(render_env("kind"), "Ingress", "lakeport-webserver")
    assert kind["spec"]["ingressClassName"] == "nginx"
    rule = kind["spec"]["rules"][0]
    assert rule["host"] == "localhost"
    assert rule["http"]["paths"][0]["path"] == "/"
    assert rule["http"]["paths"][0]["backend"]["service"] == {
        "name": "lakeport-webserver", "port": {"name": "http"}}
    # The UI's websockets outlive ingress-nginx's 60 s idle default.
    annotations = kind["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "3600"
    assert annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"] == "3600"

    cloud = one(render_env("cloud"), "Ingress", "lakeport-webserver")
    assert cloud["spec"]["tls"] == [{"secretName": "lakeport-tls",
                                      "hosts": ["lakeport.example.com",
                                                "lakeport-view.example.com"]}]
    assert cloud["metadata"]["annotations"]["alb.ingress.kubernetes.io/scheme"] == "internal"

    # Under a sub-path the webserver serves with that prefix, and probes follow it.
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"ingress": {"path": "/dagster", "pathType": "Prefix"}}))
    objects = render(str(platform_file("kind")), str(values))
    (c,) = pod_spec(one(objects, "Deployment", "lakeport-webserver"))["containers"]
    assert c["command"][c["command"].index("--path-prefix") + 1] == "/dagster"
    assert c["readinessProbe"]["httpGet"]["path"] == "/dagster/server_info"


def test_no_ingress_when_disabled(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"ingress": {"enabled": False}}))
    objects = render(str(platform_file("kind")), str(values))
    assert find(objects, "Ingress") == []


def test_helm_tests_cover_webserver_polaris_and_buckets():
    tests = {o["metadata"]["name"]: o for o in find(render_env("kind"), "Pod")
             if o["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"}
    assert set(tests) == {
        "lakeport-test-webserver", "lakeport-test-polaris", "lakeport-test-buckets"
    }
    web = tests["lakeport-test-webserver"]["spec"]["containers"][0]["command"]
    assert web[-1] == "http://lakeport-webserver:3000/server_info"
    assert "q/health/ready" in json.dumps(tests["lakeport-test-polaris"]["spec"])
    assert "head_bucket" in tests["lakeport-test-buckets"]["spec"]["containers"][0]["command"][-1]
    for pod in tests.values():
        assert pod["metadata"]["namespace"] == NAMESPACE


def test_cloud_identities_for_s3_without_keys():
    """IRSA: the annotations reach the ServiceAccounts the pods run as."""
    objects = render_env("cloud")
    dagster_sa = one(objects, "ServiceAccount", "lakeport-dagster")
    assert dagster_sa["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/lakeport-dagster"}
    polaris_sa = one(objects, "ServiceAccount", "lakeport-polaris")
    assert polaris_sa["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/lakeport-polaris"}
    assert pod_spec(one(objects, "Deployment", "lakeport-polaris"))["serviceAccountName"] == (
        "lakeport-polaris")
    launcher = dagster_yaml(objects)["run_launcher"]["config"]
    assert launcher["service_account_name"] == "lakeport-dagster"
    assert "annotations" not in one(render_env("kind"), "ServiceAccount", "lakeport-dagster")[
        "metadata"]


RUN_JAVA = "/opt/jboss/container/java/run/run-java.sh"


@pytest.mark.parametrize(
    ("tool_exit", "tool_output", "expected_exit"),
    [
        (0, "Realm 'POLARIS' successfully bootstrapped.", 0),
        (3, "java.lang.IllegalArgumentException: It appears this metastore manager has "
            "already been bootstrapped. To continue bootstrapping, please first purge", 0),
        (3, "org.postgresql.util.PSQLException: Connection refused", 3),
    ],
)
def test_realm_bootstrap_script(tmp_path, tool_exit, tool_output, expected_exit):
    """The init container's script, run by bash with the container's own env; only the
    admin tool is replaced by a script that answers like it (it is a Java program)."""
    import os
    import subprocess

    spec = pod_spec(one(render_env("kind"), "Deployment", "lakeport-polaris"))
    init = next(i for i in spec["initContainers"] if i["name"] == "bootstrap-realm")
    assert init["command"][:2] == ["/bin/bash", "-c"] and RUN_JAVA in init["command"][2]
    tool = tmp_path / "run-java.sh"
    args_file = tmp_path / "args"
    tool.write_text(
        "#!/bin/bash\n"
        f'printf "%s\\n" "$@" > {args_file}\n'
        'echo "$TOOL_OUTPUT"\necho "echoing ${ECHO_SECRET}" >&2\nexit "$TOOL_EXIT"\n'
    )
    tool.chmod(0o755)
    script = init["command"][2].replace(RUN_JAVA, str(tool))
    env = {e["name"]: e["value"] for e in init["env"] if "value" in e}
    env.update(
        PATH=os.environ["PATH"], POLARIS_ROOT_CREDENTIAL="root:t0p-s3cret",
        TOOL_OUTPUT=tool_output, TOOL_EXIT=str(tool_exit), ECHO_SECRET="t0p-s3cret",
    )
    result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
    assert result.returncode == expected_exit, result.stdout + result.stderr
    assert args_file.read_text().split("\n")[:5] == [
        "bootstrap", "--realm", "POLARIS", "--credential", "POLARIS,root,t0p-s3cret"]
    assert "t0p-s3cret" not in result.stdout + result.stderr
    assert tool_output.split(".")[0] in result.stdout


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_replicated_ui_and_code_servers_get_a_disruption_budget(env):
    objects = render_env(env)
    platform = parse_platform(effective_platform_text(objects))
    replicated = {}
    for obj in find(objects, "Deployment"):
        name = obj["metadata"]["name"]
        if name.startswith(("lakeport-webserver", "lakeport-code-")):
            replicated[name] = obj["spec"]["replicas"]
    budgets = {b["metadata"]["name"]: b for b in find(objects, "PodDisruptionBudget")}
    assert set(budgets) == {name for name, replicas in replicated.items() if replicas > 1}
    for name, budget in budgets.items():
        deployment = one(objects, "Deployment", name)
        assert budget["spec"]["maxUnavailable"] == 1
        assert budget["spec"]["selector"]["matchLabels"] == (
            deployment["spec"]["selector"]["matchLabels"])
    if env == "cloud":  # two webserver replicas, a read-only UI of two, finance of two
        assert set(budgets) == {"lakeport-webserver", "lakeport-webserver-read-only",
                                "lakeport-code-finance"}
        assert platform.code_location("demo").replicas == 1


def test_the_read_only_ui_has_its_own_pods_service_and_host():
    objects = render_env("cloud")
    platform = parse_platform(effective_platform_text(objects))
    read_only = platform.dagster.read_only_webserver
    deployment = one(objects, "Deployment", "lakeport-webserver-read-only")
    pod = pod_spec(deployment)
    (container,) = pod["containers"]
    assert "--read-only" in container["command"]
    assert "--read-only" not in pod_spec(one(objects, "Deployment", "lakeport-webserver"))[
        "containers"][0]["command"]
    # It cannot terminate runs, so it holds no API token.
    assert pod["automountServiceAccountToken"] is False
    assert deployment["spec"]["replicas"] == read_only.replicas
    service = one(objects, "Service", "lakeport-webserver-read-only")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    ingress = one(objects, "Ingress", "lakeport-webserver")
    backends = {rule["host"]: rule["http"]["paths"][0]["backend"]["service"]["name"]
                for rule in ingress["spec"]["rules"]}
    assert backends == {platform.ingress.host: "lakeport-webserver",
                        read_only.host: "lakeport-webserver-read-only"}
    policy = one(objects, "NetworkPolicy", "lakeport-webserver")
    assert policy["spec"]["podSelector"]["matchExpressions"][0]["values"] == [
        "webserver", "webserver-read-only"]


def test_every_code_server_gets_the_failure_webhook_from_its_secret():
    objects = render_env("cloud")
    platform = parse_platform(effective_platform_text(objects))
    ref = platform.notifications.failure_webhook_secret
    for location in platform.code_locations:
        (container,) = pod_spec(one(objects, "Deployment", f"lakeport-code-{location.name}"))[
            "containers"]
        webhook = [e for e in container["env"] if e["name"] == "LAKEPORT_FAILURE_WEBHOOK_URL"]
        assert webhook == [{"name": "LAKEPORT_FAILURE_WEBHOOK_URL", "valueFrom": {
            "secretKeyRef": {"name": ref.secret_name, "key": ref.key}}}]
    assert "lakeport-failure-webhook" not in one(objects, "ConfigMap", "lakeport-env")[
        "data"].values()


def test_a_location_with_its_own_webhook_keeps_it(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"codeLocations": [{
        "name": "team", "module": "team.definitions", "image": {"repository": "t", "tag": "1"},
        "secretEnv": [{"name": "LAKEPORT_FAILURE_WEBHOOK_URL", "secretName": "team-hook",
                       "key": "url"}]}]}))
    objects = render(str(platform_file("cloud")), str(values))
    (container,) = pod_spec(one(objects, "Deployment", "lakeport-code-team"))["containers"]
    webhook = [e for e in container["env"] if e["name"] == "LAKEPORT_FAILURE_WEBHOOK_URL"]
    assert [w["valueFrom"]["secretKeyRef"]["name"] for w in webhook] == ["team-hook"]


def test_platform_pods_take_their_scheduling_keys(tmp_path):
    scheduling = {
        "nodeSelector": {"pool": "platform"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "lakeport",
                         "effect": "NoSchedule"}],
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                               "labelSelector": {"matchLabels": {"a": "b"}}}}]}},
        "priorityClassName": "lakeport-platform",
        "podAnnotations": {"example.com/owner": "data-platform"},
        "podLabels": {"team": "platform"},
        "imagePullSecrets": ["registry-pull"],
    }
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({
        "dagster": {"webserver": {"scheduling": scheduling}, "daemon": {"scheduling": scheduling}},
        "codeLocations": [{"name": "team", "module": "team.definitions",
                           "image": {"repository": "t", "tag": "1"}, "scheduling": scheduling}],
    }))
    objects = render(str(platform_file("kind")), str(values))
    for name in ("lakeport-webserver", "lakeport-daemon", "lakeport-code-team"):
        deployment = one(objects, "Deployment", name)
        pod = pod_spec(deployment)
        assert pod["nodeSelector"] == scheduling["nodeSelector"], name
        assert pod["tolerations"] == scheduling["tolerations"], name
        assert pod["affinity"] == scheduling["affinity"], name
        assert pod["priorityClassName"] == "lakeport-platform", name
        assert pod["imagePullSecrets"] == [{"name": "registry-pull"}], name
        metadata = deployment["spec"]["template"]["metadata"]
        assert metadata["annotations"]["example.com/owner"] == "data-platform", name
        assert metadata["labels"]["team"] == "platform", name
        # The selector stays the component's own: a pod label never joins it.
        assert "team" not in deployment["spec"]["selector"]["matchLabels"], name
    for version in ("1.29", "1.33"):
        for obj in workloads(objects):
            kubernetes_validate.validate(obj, version, strict=True)
