import json

from lakeport.platform import Platform
from lakeport.profiles import K8S_CONFIG_TAG, PROFILE_TAG, profile_tags, run_k8s_config


def test_default_profile_tags_carry_transform_numbers():
    platform = Platform()
    tags = profile_tags(platform)
    assert tags[PROFILE_TAG] == "transform"
    config = json.loads(tags[K8S_CONFIG_TAG])
    assert config["container_config"]["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "2", "memory": "2Gi"},
    }
    assert config["pod_spec_config"]["volumes"][0]["empty_dir"]["size_limit"] == "10Gi"
    assert config["merge_behavior"] == "SHALLOW"


def test_named_profile_differs_from_default():
    platform = Platform()
    large = run_k8s_config(platform, "large")
    assert large["container_config"]["resources"]["limits"]["memory"] == "8Gi"
    assert large["pod_spec_config"]["volumes"][0]["empty_dir"]["size_limit"] == "50Gi"


def test_dagster_k8s_accepts_the_config():
    from dagster_k8s.job import UserDefinedDagsterK8sConfig

    config = UserDefinedDagsterK8sConfig.from_dict(run_k8s_config(Platform(), "large"))
    assert config.container_config["resources"]["limits"]["cpu"] == "4"
    assert config.pod_spec_config["volumes"][0]["name"] == "duckdb-spill"
