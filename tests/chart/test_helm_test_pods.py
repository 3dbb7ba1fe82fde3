"""The `helm test` bucket check, run as its pod would run it, against a real S3 endpoint.

The pod's environment is rebuilt from the rendered objects (env ConfigMap, platform file,
secret env names); only the S3 endpoint in the platform file points at the moto server
instead of the in-cluster LocalStack, and the keys are moto's.
"""

import secrets
import subprocess
import sys

import yaml
from chart_render import effective_platform_text, one, render_env

from lakeport.dev.s3 import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY


def _bucket_check(tmp_path, s3_server, warehouse_bucket, logs_bucket):
    objects = render_env("kind")
    pod = one(objects, "Pod", "lakeport-test-buckets")
    (container,) = pod["spec"]["containers"]
    assert container["command"][:2] == ["python", "-c"]
    platform = yaml.safe_load(effective_platform_text(objects))
    platform["objectStorage"]["endpoint"] = s3_server.endpoint
    # Buckets of this test only: the S3 server is shared by the whole session.
    platform["catalog"]["warehouse"] = f"s3://{warehouse_bucket}/"
    platform["computeLogs"]["bucket"] = logs_bucket
    platform_file = tmp_path / "platform.yaml"
    platform_file.write_text(yaml.safe_dump(platform))
    platform_cm = one(objects, "ConfigMap", "lakeport-platform")["data"]
    aws_config = tmp_path / "aws-config"
    aws_config.write_text(platform_cm["aws-config"])
    env = dict(one(objects, "ConfigMap", "lakeport-env")["data"])
    env.update(LAKEPORT_PLATFORM_FILE=str(platform_file), AWS_CONFIG_FILE=str(aws_config),
               AWS_ENDPOINT_URL_S3=s3_server.endpoint)
    secret_names = {e["name"] for e in container["env"] if "valueFrom" in e}
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= secret_names
    env.update(AWS_ACCESS_KEY_ID=LOCAL_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY=LOCAL_SECRET_ACCESS_KEY)
    return subprocess.run([sys.executable, "-c", container["command"][2]], env=env,
                          capture_output=True, text=True, timeout=60)


def test_bucket_check_fails_while_a_bucket_is_missing(tmp_path, s3_server):
    tag = secrets.token_hex(4)
    s3_server.ensure_buckets(f"wh-{tag}")
    result = _bucket_check(tmp_path, s3_server, f"wh-{tag}", f"logs-{tag}")
    assert result.returncode != 0
    assert f"bucket exists: wh-{tag}" in result.stdout
    assert f"logs-{tag}" not in result.stdout


def test_bucket_check_passes_when_both_exist(tmp_path, s3_server):
    tag = secrets.token_hex(4)
    s3_server.ensure_buckets(f"wh-{tag}", f"logs-{tag}")
    result = _bucket_check(tmp_path, s3_server, f"wh-{tag}", f"logs-{tag}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"bucket exists: wh-{tag}" in result.stdout
    assert f"bucket exists: logs-{tag}" in result.stdout
