"""The Kubernetes manifests: the example overlay builds with kustomize, every object passes
offline schema validation (tests/ops/k8s_validate.py), and the manifests agree with the
code: a Deployment for every service and every destination's sink, topics (names,
partitions, cleanup policies), consumer groups and topics KEDA watches, autoscaling bounded
by partitions, probes on /health, graceful shutdown that fits a sink delivery, secrets only
from Secrets (and documented), disruption budgets that let a node drain, and a Paddle sink
that cannot exceed Paddle's per-IP limit."""

from __future__ import annotations

import argparse
import math
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.cli import build_parser
from services.paddle_sink.destination import paddle_limits
from services.paddle_sink.main import RATE_LIMIT_ENV, parse_rate_limit
from shared.contracts import Destination
from shared.kafka.topics import TopicSpec, topic_specs
from shared.settings import Settings, TopicNames
from shared.sinks.limits import Scope
from shared.sinks.options import SinkOptions
from tests.ops.k8s_validate import InvalidObject, validate

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
# Every destination family has its sink service: a new destination without manifests fails.
SINKS = {d.family for d in Destination}
SERVICES = {"router", "control", "monitor", "webhooks"} | {f"{f}-sink" for f in SINKS}
# Sinks whose provider counts calls per client address, not per credential: every pod
# shares one budget, so they never scale out on lag (Paddle: 240 a minute per IP).
PER_ADDRESS = {"paddle"}
# Names of settings that are secrets: only ever from a Secret, never in the ConfigMap.
SECRET_NAME = re.compile(r"(PASSWORD|TOKEN|SECRET|_KEY)S?$")


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


def env_values(objects: list[dict[str, Any]], deployment: dict[str, Any]) -> dict[str, str]:
    """The literal settings a pod runs with: the ConfigMap's, then its own `env` values."""
    values = dict(settings_data(objects))
    values.update({e["name"]: e["value"] for e in container(deployment)["env"] if "value" in e})
    return values


def sink_options(objects: list[dict[str, Any]], deployment: dict[str, Any]) -> SinkOptions:
    env = env_values(objects, deployment)
    prefix = "BILLSYNC_SINK_"
    tunables = {k.removeprefix(prefix).lower(): v for k, v in env.items() if k.startswith(prefix)}
    fields = set(SinkOptions.model_fields)
    return SinkOptions(**{k: v for k, v in tunables.items() if k in fields})


def billsync_commands() -> set[str]:
    [commands] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return set(commands.choices)


def pods_at_most(objects: list[dict[str, Any]], name: str) -> int:
    """The most pods of Deployment `name` that can run at once: its replicas, or the
    largest count an autoscaler may set, plus the surge of a rolling update."""
    spec = of_kind(objects, "Deployment")[name]["spec"]
    scalers = [
        o["spec"]["maxReplicaCount"]
        for o in of_kind(objects, "ScaledObject").values()
        if o["spec"]["scaleTargetRef"]["name"] == name
    ]
    scalers += [
        o["spec"]["maxReplicas"]
        for o in of_kind(objects, "HorizontalPodAutoscaler").values()
        if o["spec"]["scaleTargetRef"]["name"] == name
    ]
    pods: int = max(scalers) if scalers else spec.get("replicas", 1)
    strategy = spec.get("strategy", {})
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        surge = strategy.get("rollingUpdate", {}).get("maxSurge", "25%")
        if isinstance(surge, str):  # a percentage, rounded up (Kubernetes does)
            surge = math.ceil(pods * int(surge.rstrip("%")) / 100)
        pods += surge
    return pods


def paddle_calls_per_window(objects: list[dict[str, Any]]) -> tuple[int, int]:
    """(the most Paddle calls every Paddle sink pod together can make in Paddle's window,
    Paddle's limit in that window)."""
    [provider] = paddle_limits().windows
    deployment = of_kind(objects, "Deployment")["billsync-paddle-sink"]
    text = env_values(objects, deployment).get(RATE_LIMIT_ENV, "240/60")
    count, seconds = parse_rate_limit(text)
    # A shorter window than Paddle's admits its count again in every one of its windows.
    per_process = (
        count * math.ceil(provider.seconds / seconds) if seconds < provider.seconds else count
    )
    return pods_at_most(objects, "billsync-paddle-sink") * per_process, provider.limit


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
    commands = billsync_commands()
    for name, deployment in deployments.items():
        c = container(deployment)
        # `billsync <service>`, a command the CLI really has.
        assert c["args"] == [name.removeprefix("billsync-")] and c["args"][0] in commands, name
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
        assert name in services and name in budgets, name
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = budgets[name]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items(), name
    # Services that reach the control plane reach its Service (Xero: saving refreshed tokens).
    control_service = services["billsync-control"]["spec"]["ports"][0]["port"]
    for name, deployment in deployments.items():
        for key, url in env_values(objects, deployment).items():
            if key.endswith("CONTROL_URL"):
                assert url == f"http://billsync-control:{control_service}", (name, key)
    # One writer of configurations: the control plane never runs twice.
    control = deployments["billsync-control"]["spec"]
    assert control["replicas"] == 1 and control["strategy"]["type"] == "Recreate"


def test_secrets_come_only_from_secrets_and_are_documented(
    objects: list[dict[str, Any]],
) -> None:
    assert not [k for k in settings_data(objects) if SECRET_NAME.search(k)]
    docs = (ROOT / "docs" / "deployment.md").read_text()
    for name, deployment in of_kind(objects, "Deployment").items():
        for e in container(deployment)["env"]:
            if not SECRET_NAME.search(e["name"]):
                continue
            assert "value" not in e, (name, e["name"])
            ref = e["valueFrom"]["secretKeyRef"]
            # The Secret and its key are among those the operator is told to create.
            assert f"create secret generic {ref['name']}" in docs, (name, ref)
            assert re.search(rf"--from-(literal|file)={ref['key']}=", docs), (name, ref)


def test_sink_grace_period_fits_a_delivery(objects: list[dict[str, Any]]) -> None:
    deployments = of_kind(objects, "Deployment")
    for family in SINKS:
        sink = deployments[f"billsync-{family}-sink"]
        options = sink_options(objects, sink)
        grace = sink["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        # A stop waits stop_grace for deliveries under way, then commits and closes: the
        # pod is not killed before. It covers a whole attempt too, should the stop grace
        # be raised to let attempts finish.
        assert grace >= options.stop_grace + 15, f"{family}: grace {grace}s < stop grace"
        timeout = options.delivery_timeout
        assert grace >= timeout + 15, f"{family}: grace {grace}s does not cover {timeout}s"
        # Test-only settings never reach a cluster (one interval for every configuration).
        assert "BILLSYNC_SINK_SCHEDULE_INTERVAL" not in env_values(objects, sink), family


def test_disruption_budgets_let_a_node_drain(objects: list[dict[str, Any]]) -> None:
    deployments = of_kind(objects, "Deployment")
    fewest = {
        o["spec"]["scaleTargetRef"]["name"]: o["spec"]["minReplicaCount"]
        for o in of_kind(objects, "ScaledObject").values()
    }
    for name, budget in of_kind(objects, "PodDisruptionBudget").items():
        pods = fewest.get(name, deployments[name]["spec"].get("replicas", 1))
        spec = budget["spec"]
        # minAvailable equal to the pods would refuse every eviction: a drain never ends.
        assert spec.get("maxUnavailable", 0) >= 1 or spec["minAvailable"] < pods, name


def test_paddle_sinks_together_stay_within_the_per_ip_limit(
    objects: list[dict[str, Any]],
) -> None:
    # Paddle counts per client IP, every credential together (the code agrees).
    assert paddle_limits().scope is Scope.PROCESS
    calls, limit = paddle_calls_per_window(objects)
    assert calls <= limit, f"Paddle sink pods can make {calls} calls where Paddle allows {limit}"


def test_the_paddle_check_refuses_what_would_exceed_the_limit(
    objects: list[dict[str, Any]],
) -> None:
    def changed(edit: Any) -> list[dict[str, Any]]:
        copy: list[dict[str, Any]] = yaml.safe_load(yaml.safe_dump(objects))
        edit(of_kind(copy, "Deployment")["billsync-paddle-sink"], copy)
        return copy

    def replicas(n: int, limit: str | None = None) -> Any:
        def edit(deployment: dict[str, Any], _: list[dict[str, Any]]) -> None:
            deployment["spec"]["replicas"] = n
            for e in container(deployment)["env"]:
                if e["name"] == RATE_LIMIT_ENV and limit is not None:
                    e["value"] = limit

        return edit

    def rolling(deployment: dict[str, Any], _: list[dict[str, Any]]) -> None:
        deployment["spec"]["strategy"] = {"type": "RollingUpdate"}

    def scaled(deployment: dict[str, Any], copy: list[dict[str, Any]]) -> None:
        scaler = yaml.safe_load(yaml.safe_dump(of_kind(copy, "ScaledObject")["billsync-xero-sink"]))
        scaler["metadata"]["name"] = scaler["spec"]["scaleTargetRef"]["name"] = deployment[
            "metadata"
        ]["name"]
        copy.append(scaler)

    assert paddle_calls_per_window(changed(replicas(2))) == (480, 240)
    assert paddle_calls_per_window(changed(replicas(2, "120/60"))) == (240, 240)
    assert paddle_calls_per_window(changed(replicas(2, "60/30"))) == (240, 240)
    assert paddle_calls_per_window(changed(replicas(2, "61/30"))) == (244, 240)
    assert paddle_calls_per_window(changed(rolling))[0] == 480  # old and new pod together
    assert paddle_calls_per_window(changed(scaled))[0] == 6 * 240


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
    data = settings_data(objects)
    partitions = int(data["BILLSYNC_TOPIC_PARTITIONS"])
    topics = {t["spec"]["topicName"]: t["spec"] for t in of_kind(objects, "KafkaTopic").values()}
    deployments = of_kind(objects, "Deployment")
    # The group and topics each service really uses (Settings: consumer_group_prefix and
    # topic names, from the ConfigMap as the pods read them).
    settings = Settings(
        topics=TopicNames(prefix=data.get("BILLSYNC_TOPIC_PREFIX", "")),
        consumer_group_prefix=data.get("BILLSYNC_CONSUMER_GROUP_PREFIX", "billsync"),
    )
    prefix, names = settings.consumer_group_prefix, settings.topics
    reads = {
        "billsync-router": (
            f"{prefix}-router",
            {names.name(t) for t in ("bill_generated", "bill_approved", "bill_replay")},
        ),
    }
    for family in SINKS - PER_ADDRESS:
        reads[f"billsync-{family}-sink"] = (f"{prefix}-{family}-sink", {names.dispatch(family)})
    scaled = of_kind(objects, "ScaledObject")
    assert {o["spec"]["scaleTargetRef"]["name"] for o in scaled.values()} == set(reads)
    bootstrap = data["KAFKA_BOOTSTRAP_SERVERS"]
    for name, obj in scaled.items():
        spec = obj["spec"]
        target = spec["scaleTargetRef"]["name"]
        group, inputs = reads[target]
        watched = set()
        for trigger in spec["triggers"]:
            meta = trigger["metadata"]
            assert trigger["type"] == "kafka"
            assert meta["consumerGroup"] == group, name
            assert meta["bootstrapServers"] == bootstrap
            assert topics[meta["topic"]]["partitions"] == partitions
            watched.add(meta["topic"])
        assert watched == inputs, name
        # At least 2 (a drain keeps one; a scheduled batch always has an owner), at most
        # the partitions (an instance beyond them owns none).
        assert 2 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= partitions
        # KEDA owns the replica count: a fixed one in the Deployment would fight it.
        assert "replicas" not in deployments[target]["spec"], name
        if target.endswith("-sink"):
            # A scale-in finishes draining before the next decision.
            grace = deployments[target]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            assert spec["cooldownPeriod"] > grace, name
