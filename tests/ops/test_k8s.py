"""The Kubernetes manifests: the example overlay builds with kustomize, every object passes
offline schema validation (tests/ops/k8s_validate.py), and the manifests agree with the
code: topics (names, partitions, cleanup policies), consumer groups, autoscaling bounded by
partitions, probes on /health, graceful shutdown that fits a sink delivery, secrets."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.kafka.topics import TopicSpec, topic_specs
from shared.settings import Settings, TopicNames
from shared.sinks.options import SinkOptions
from tests.ops.k8s_validate import InvalidObject, validate

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SERVICES = {"router", "stripe-sink", "control", "monitor", "webhooks"}


def kustomize(folder: Path) -> list[dict[str, Any]]:
    if shutil.which("kustomize"):
        command = ["kustomize", "build", str(folder)]
    elif shutil.which("kubectl"):
        command = ["kubectl", "kustomize", str(folder)]
    else:
        pytest.fail("kustomize is missing: run deploy/ci/install-kustomize.sh (as root)")
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return [o for o in yaml.safe_load_all(done.stdout) if o]


@pytest.fixture(scope="module", params=["base", "overlays/example"])
def objects(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return kustomize(K8S / request.param)


def of_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    spec = deployment["spec"]["template"]["spec"]
    [only] = spec["containers"]
    result: dict[str, Any] = only
    return result


def settings_data(objects: list[dict[str, Any]]) -> dict[str, str]:
    data: dict[str, str] = of_kind(objects, "ConfigMap")["billsync-settings"]["data"]
    return data


def test_every_object_is_valid(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        validate(obj)


def test_validation_refuses_what_kubernetes_would(objects: list[dict[str, Any]]) -> None:
    deployment = of_kind(objects, "Deployment")["billsync-router"]
    misspelt = yaml.safe_load(yaml.safe_dump(deployment))
    container(misspelt)["readinessProbe"]["httpGet"]["paht"] = "/health"
    with pytest.raises(InvalidObject, match="unknown field 'paht'"):
        validate(misspelt)
    topic = next(iter(of_kind(objects, "KafkaTopic").values()))
    wrong = {**topic, "spec": {**topic["spec"], "partitions": "6"}}
    with pytest.raises(InvalidObject, match="partitions"):
        validate(wrong)


def test_every_service_is_deployed_probed_and_scraped(objects: list[dict[str, Any]]) -> None:
    deployments = of_kind(objects, "Deployment")
    assert set(deployments) == {f"billsync-{s}" for s in SERVICES}
    services, budgets = of_kind(objects, "Service"), of_kind(objects, "PodDisruptionBudget")
    for name, deployment in deployments.items():
        c = container(deployment)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            get = c[probe]["httpGet"]
            assert get["path"] == "/health" and get["port"] in ports, (name, probe)
        assert {"cpu", "memory"} <= set(c["resources"]["requests"]), name
        assert "memory" in c["resources"]["limits"], name
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert int(annotations["prometheus.io/port"]) in ports.values(), name
        key = next(e for e in c["env"] if e["name"] == "BILLSYNC_CREDENTIALS_KEY")
        assert key["valueFrom"]["secretKeyRef"]["name"] == "billsync-credentials-key"
        assert not any(e.get("value") for e in c["env"] if "PASSWORD" in e["name"])
        assert name in services and name in budgets, name
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = budgets[name]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items(), name
    # One writer of configurations: the control plane never runs twice.
    control = deployments["billsync-control"]["spec"]
    assert control["replicas"] == 1 and control["strategy"]["type"] == "Recreate"


def test_sink_grace_period_fits_a_delivery(objects: list[dict[str, Any]]) -> None:
    sink = of_kind(objects, "Deployment")["billsync-stripe-sink"]
    env = {e["name"]: e.get("value") for e in container(sink)["env"]}
    timeout = float(env.get("BILLSYNC_SINK_DELIVERY_TIMEOUT") or SinkOptions().delivery_timeout)
    grace = sink["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= timeout + 15, f"grace {grace}s does not cover a {timeout}s delivery"


def code_topics(partitions: int) -> dict[str, TopicSpec]:
    settings = Settings(topics=TopicNames(prefix=""), topic_partitions=partitions)
    specs = topic_specs(settings)
    return {s.name: s for s in specs}


def test_topics_are_the_codes(objects: list[dict[str, Any]]) -> None:
    partitions = int(settings_data(objects)["BILLSYNC_TOPIC_PARTITIONS"])
    expected = code_topics(partitions)
    declared = {t["spec"]["topicName"]: t["spec"] for t in of_kind(objects, "KafkaTopic").values()}
    assert set(declared) == set(expected)
    for name, spec in expected.items():
        assert declared[name]["partitions"] == spec.partitions, name
        for key, value in spec.config().items():
            assert str(declared[name]["config"][key]) == value, (name, key)


def test_autoscaling_follows_lag_within_partitions(objects: list[dict[str, Any]]) -> None:
    partitions = int(settings_data(objects)["BILLSYNC_TOPIC_PARTITIONS"])
    topics = {t["spec"]["topicName"]: t["spec"] for t in of_kind(objects, "KafkaTopic").values()}
    deployments = of_kind(objects, "Deployment")
    groups = {"billsync-router": "billsync-router", "billsync-stripe-sink": "billsync-stripe-sink"}
    scaled = of_kind(objects, "ScaledObject")
    assert set(scaled) == set(groups)
    bootstrap = settings_data(objects)["KAFKA_BOOTSTRAP_SERVERS"]
    for name, obj in scaled.items():
        spec = obj["spec"]
        assert spec["scaleTargetRef"]["name"] in deployments
        for trigger in spec["triggers"]:
            meta = trigger["metadata"]
            assert trigger["type"] == "kafka"
            # The group the service really uses (Settings.consumer_group_prefix = billsync).
            assert meta["consumerGroup"] == groups[name]
            assert meta["bootstrapServers"] == bootstrap
            assert topics[meta["topic"]]["partitions"] == partitions
        assert 2 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= partitions
        # KEDA owns the replica count: a fixed one in the Deployment would fight it.
        assert "replicas" not in deployments[spec["scaleTargetRef"]["name"]]["spec"], name
