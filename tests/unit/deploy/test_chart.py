"""The Helm chart under deploy/helm/selective-autonomy: lint, render and validate offline.

Everything runs in-process through helm-python-sdk (Helm SDK) and kubernetes-validate; no cluster
and no network. Scenarios are the chart's ci/values-*.yaml files plus one inline "everything on".
"""

from __future__ import annotations

import base64
import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

helm_python = pytest.importorskip("helm_python")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

from selective_autonomy.config import load_settings  # noqa: E402

CHART_DIR = Path(__file__).resolve().parents[3] / "deploy" / "helm" / "selective-autonomy"
KUBE_VERSION = "1.30.0"
RELEASE = "selauto"
NAMESPACE = "support"
SELECTOR_KEYS = {"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"}
HOOK_EVENTS = {"pre-install", "pre-upgrade"}
SENTINEL = "s3ntinel-Do-Not-Render"

# Chart-managed credentials, the executor and a NodePort console: templates the ci/ files leave off.
EVERYTHING: dict[str, Any] = {
    "kafka": {
        "securityProtocol": "SASL_PLAINTEXT",
        "saslMechanism": "PLAIN",
        "sasl": {"username": "selauto", "password": "inline-password"},
        "extra": {"linger.ms": 5, "enable.idempotence": True},
    },
    "store": {"url": "postgresql+psycopg://selauto:pw@db:5432/selauto"},
    "console": {"token": "inline-token", "service": {"type": "NodePort"}},
    "executor": {"enabled": True, "extraEnv": [{"name": "PLATFORM_URL", "value": "http://platform"}]},
    "inference": {"url": "http://inference.example:8000/v1", "model": "policy"},
    "worker": {"data": {"existingClaim": "selauto-data"}, "pdb": {"minAvailable": "50%"}},
}


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


SCENARIOS: dict[str, dict[str, Any]] = {
    "default": _load(CHART_DIR / "ci" / "values-default.yaml"),
    "production": _load(CHART_DIR / "ci" / "values-production.yaml"),
    "everything": EVERYTHING,
}


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class Rendered:
    """One render: manifests by kind/name, the NOTES text and the raw text of every template."""

    def __init__(self, templates: dict[str, str]) -> None:
        self.raw = templates
        self.notes = next((text for path, text in templates.items() if path.endswith("NOTES.txt")), "")
        self.docs: list[dict[str, Any]] = []
        for path, text in templates.items():
            if path.endswith(".txt"):
                continue
            self.docs.extend(doc for doc in yaml.safe_load_all(text) if doc)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def one(self, kind: str, component: str) -> dict[str, Any]:
        found = [
            d for d in self.of_kind(kind) if d["metadata"]["labels"].get("app.kubernetes.io/component") == component
        ]
        assert len(found) == 1, f"expected one {kind} for {component}, got {len(found)}"
        return found[0]


@pytest.fixture(scope="module")
def chart() -> Iterator[Any]:
    with helm_python.Chart.load(CHART_DIR) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def render(chart: Any) -> Any:
    cache: dict[str, Rendered] = {}

    def _render(values: dict[str, Any], name: str = RELEASE) -> Rendered:
        key = json.dumps([values, name], sort_keys=True)
        if key not in cache:
            cache[key] = Rendered(chart.render(values, name=name, namespace=NAMESPACE, is_install=True))
        return cache[key]

    return _render


def _containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = workload["spec"]["template"]["spec"]["containers"]
    return containers


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container.get("env", [])}


# --- lint and Kubernetes validation ------------------------------------------------------------


@pytest.mark.parametrize("values_file", [None, "ci/values-default.yaml", "ci/values-production.yaml"])
def test_lint_strict_has_no_errors_or_warnings(values_file: str | None) -> None:
    values = _load(CHART_DIR / values_file) if values_file else None
    report = helm_python.lint(CHART_DIR, values, strict=True, namespace=NAMESPACE, kube_version=f"v{KUBE_VERSION}")
    serious = [m for m in report["messages"] if m["severity"] >= 2]
    assert not serious, serious
    assert not report["errors"], report["errors"]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_rendered_manifest_validates_against_kubernetes(render: Any, scenario: str) -> None:
    rendered = render(SCENARIOS[scenario])
    assert rendered.docs
    failures = []
    for doc in rendered.docs:
        try:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{doc['kind']}/{doc['metadata']['name']} at {list(exc.path)}: {exc.message}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_settings_file_is_accepted_by_selauto(render: Any, scenario: str, tmp_path: Path) -> None:
    rendered = render(SCENARIOS[scenario])
    values = SCENARIOS[scenario]
    for configmap in rendered.of_kind("ConfigMap"):
        data = yaml.safe_load(configmap["data"]["settings.yaml"])
        for key in values.get("settings", {}):  # free-form keys belong to settings other engineers add
            data.pop(key, None)
        path = tmp_path / f"{configmap['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(data))
        settings = load_settings(path)
        assert settings.topics.partitions == values.get("topics", {}).get("partitions", 4)
        assert settings.kafka.security_protocol == values.get("kafka", {}).get("securityProtocol", "PLAINTEXT")


# --- labels and selectors ----------------------------------------------------------------------


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_selectors_are_subsets_of_pod_labels_and_only_selector_labels(render: Any, scenario: str) -> None:
    rendered = render(SCENARIOS[scenario])
    pods: dict[str, dict[str, str]] = {}
    for workload in rendered.of_kind("Deployment"):
        selector = workload["spec"]["selector"]["matchLabels"]
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert set(selector) == SELECTOR_KEYS, workload["metadata"]["name"]
        assert selector.items() <= labels.items(), workload["metadata"]["name"]
        pods[selector["app.kubernetes.io/component"]] = labels
    for service in rendered.of_kind("Service"):
        selector = service["spec"]["selector"]
        assert set(selector) == SELECTOR_KEYS
        assert selector.items() <= pods[selector["app.kubernetes.io/component"]].items()
    pdbs = rendered.of_kind("PodDisruptionBudget")
    assert len(pdbs) == 1
    selector = pdbs[0]["spec"]["selector"]["matchLabels"]
    assert set(selector) == SELECTOR_KEYS
    assert selector == {
        "app.kubernetes.io/name": "selective-autonomy",
        "app.kubernetes.io/instance": RELEASE,
        "app.kubernetes.io/component": "worker",
    }
    assert selector.items() <= pods["worker"].items()


def test_user_labels_reach_pods_but_never_selectors(render: Any) -> None:
    rendered = render(SCENARIOS["production"])
    worker = rendered.one("Deployment", "worker")
    assert worker["spec"]["template"]["metadata"]["labels"]["cost-center"] == "support"
    assert worker["metadata"]["labels"]["team"] == "support-platform"
    for doc in rendered.docs:
        spec = doc.get("spec", {})
        selector = spec.get("selector", {})
        selector = selector.get("matchLabels", selector) if isinstance(selector, dict) else {}
        assert not {"team", "cost-center"} & set(selector), doc["metadata"]["name"]


def test_names_fit_63_chars_and_stay_distinct_for_long_release_names(render: Any) -> None:
    rendered = render(SCENARIOS["everything"], name="r" * 60)
    names = {(doc["kind"], doc["metadata"]["name"]) for doc in rendered.docs}
    assert all(len(name) <= 63 for _, name in names), names
    components = [name for kind, name in names if kind == "Deployment"]
    assert sorted(name.rsplit("-", 1)[1] for name in components) == ["console", "executor", "worker"]


# --- scenarios -----------------------------------------------------------------------------------


def test_default_scenario(render: Any) -> None:
    rendered = render(SCENARIOS["default"])
    kinds = sorted((doc["kind"], doc["metadata"]["labels"]["app.kubernetes.io/component"]) for doc in rendered.docs)
    assert ("Deployment", "executor") not in kinds and ("Deployment", "vllm") not in kinds
    assert not rendered.of_kind("Ingress")
    worker = rendered.one("Deployment", "worker")
    (container,) = _containers(worker)
    assert container["image"] == "ghcr.io/selective-autonomy/selective-autonomy:0.1.0"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert container["ports"][0]["containerPort"] == 6066
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert worker["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["data"]["mountPath"] == _env(container)["SELAUTO_DATA_DIR"]["value"]
    assert mounts["models"]["readOnly"] is True
    assert "SELAUTO_INFERENCE__URL" not in _env(container)
    assert "SELAUTO_KAFKA__SASL_PASSWORD" not in _env(container)
    (secret,) = rendered.of_kind("Secret")
    assert set(secret["data"]) == {"console-token"}
    assert len(base64.b64decode(secret["data"]["console-token"])) == 40
    assert "port-forward svc/selauto-selective-autonomy-console" in rendered.notes
    assert "WARNING" not in rendered.notes


def test_production_scenario(render: Any) -> None:
    rendered = render(SCENARIOS["production"])
    worker = rendered.one("Deployment", "worker")
    assert worker["spec"]["replicas"] == 3
    (container,) = _containers(worker)
    env = _env(container)
    refs = {name: env[name]["valueFrom"]["secretKeyRef"] for name in env if "valueFrom" in env[name]}
    assert refs["SELAUTO_KAFKA__SASL_USERNAME"] == {"name": "selauto-kafka-credentials", "key": "username"}
    assert refs["SELAUTO_KAFKA__SASL_PASSWORD"] == {"name": "selauto-kafka-credentials", "key": "password"}
    assert refs["SELAUTO_STORE__URL"] == {"name": "selauto-store", "key": "dsn"}
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://otel-collector.observability.svc:4318"
    assert env["SELAUTO_INFERENCE__URL"]["value"] == "http://selauto-selective-autonomy-vllm:8000/v1"
    assert env["SELAUTO_INFERENCE__MODEL"]["value"] == "selauto-policy"
    assert container["resources"]["limits"]["memory"] == "4Gi"
    console_env = _env(_containers(rendered.one("Deployment", "console"))[0])
    assert console_env["SELAUTO_CONSOLE__TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "selauto-console",
        "key": "token",
    }
    assert not rendered.of_kind("Secret"), "every credential comes from an existing Secret"

    vllm = rendered.one("Deployment", "vllm")
    (server,) = _containers(vllm)
    assert server["image"] == "docker.io/vllm/vllm-openai:v0.11.0"
    assert server["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert server["args"][:6] == [
        "--model",
        "/models/policy/current",
        "--served-model-name",
        "selauto-policy",
        "--port",
        "8000",
    ]
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in vllm["spec"]["template"]["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    ]
    assert claims == ["selauto-models"]
    assert rendered.one("Service", "vllm")["spec"]["ports"][0]["port"] == 8000

    ingress = rendered.one("Ingress", "console")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"secretName": "selauto-console-tls", "hosts": ["selauto.support.example.com"]}]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "selauto-selective-autonomy-console", "port": {"name": "http"}}
    assert rendered.one("PodDisruptionBudget", "worker")["spec"]["minAvailable"] == 2
    assert "https://selauto.support.example.com/" in rendered.notes


def test_inline_credentials_are_never_rendered_with_existing_secrets(render: Any) -> None:
    values = _deep_merge(
        SCENARIOS["production"],
        {
            "kafka": {"sasl": {"username": SENTINEL, "password": SENTINEL}},
            "store": {"url": SENTINEL},
            "console": {"token": SENTINEL},
        },
    )
    rendered = render(values)
    text = "\n".join(rendered.raw.values())
    assert SENTINEL not in text
    assert base64.b64encode(SENTINEL.encode()).decode() not in text


def test_chart_managed_credentials(render: Any) -> None:
    rendered = render(SCENARIOS["everything"])
    main = [s for s in rendered.of_kind("Secret") if "helm.sh/hook" not in s["metadata"].get("annotations", {})]
    (secret,) = main
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded == {
        "kafka-sasl-username": "selauto",
        "kafka-sasl-password": "inline-password",
        "console-token": "inline-token",
        "store-url": "postgresql+psycopg://selauto:pw@db:5432/selauto",
    }
    for component in ("worker", "console", "executor"):
        env = _env(_containers(rendered.one("Deployment", component))[0])
        assert env["SELAUTO_KAFKA__SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
        assert env["SELAUTO_STORE__URL"]["valueFrom"]["secretKeyRef"]["key"] == "store-url"
    worker_env = _env(_containers(rendered.one("Deployment", "worker"))[0])
    assert worker_env["SELAUTO_INFERENCE__URL"]["value"] == "http://inference.example:8000/v1"
    executor = rendered.one("Deployment", "executor")
    assert _containers(executor)[0]["args"] == ["executor"]
    assert _containers(executor)[0]["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert rendered.one("PodDisruptionBudget", "worker")["spec"]["minAvailable"] == "50%"


# --- the topic-creation hook -------------------------------------------------------------------


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_topic_job_is_a_pre_install_and_pre_upgrade_hook(render: Any, scenario: str) -> None:
    rendered = render(SCENARIOS[scenario])
    job = rendered.one("Job", "topics")
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == HOOK_EVENTS
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    (container,) = _containers(job)
    assert container["command"] + container["args"] == ["selauto", "topics", "create"]
    # Its ConfigMap (and chart-managed Secret) are hooks too, created before the Job.
    config_volume = next(v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == "config")
    hook_objects = [
        d for d in rendered.docs if d is not job and d["metadata"].get("annotations", {}).get("helm.sh/hook")
    ]
    names = {d["metadata"]["name"]: d for d in hook_objects}
    assert config_volume["configMap"]["name"] in names
    for hook_object in hook_objects:
        hook_annotations = hook_object["metadata"]["annotations"]
        assert set(hook_annotations["helm.sh/hook"].split(",")) == HOOK_EVENTS
        assert int(hook_annotations["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"])
    secret_refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e}
    for name in secret_refs:
        existing = SCENARIOS[scenario].get("kafka", {}).get("sasl", {}).get("existingSecret")
        assert name == existing or (name in names and names[name]["kind"] == "Secret")


def test_topic_job_can_be_disabled(render: Any) -> None:
    rendered = render({"topics": {"create": {"enabled": False}}})
    assert not rendered.of_kind("Job")
    assert not [d for d in rendered.docs if d["metadata"].get("annotations", {}).get("helm.sh/hook")]


# --- values, schema and NOTES ------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        {"worker": {"replicas": -1}},
        {"kafka": {"securityProtocol": "BOGUS"}},
        {"kafka": {"securityProtocol": "SASL_SSL"}},
        {"topics": {"partitions": 0}},
        {"image": {"tag": "latest"}},
        {"vllm": {"enabled": True}},
        {"worker": {"pdb": {"minAvailable": "half"}}},
        {"console": {"service": {"type": "Bogus"}}},
        {"workers": {"replicas": 2}},
        {"worker": {"replica": 2}},
    ],
    ids=lambda v: json.dumps(v, sort_keys=True),
)
def test_schema_rejects_invalid_values(chart: Any, values: dict[str, Any]) -> None:
    with pytest.raises(helm_python.HelmValuesError):
        chart.validate_schema(values)


def test_invalid_values_fail_render_and_lint(chart: Any) -> None:
    with pytest.raises(helm_python.HelmValuesError, match="replicas"):
        chart.render({"worker": {"replicas": -1}}, name=RELEASE, namespace=NAMESPACE)
    report = helm_python.lint(CHART_DIR, {"kafka": {"securityProtocol": "BOGUS"}}, strict=True)
    assert any(m["severity"] == 3 and "securityProtocol" in m["error"] for m in report["messages"])


def test_sasl_without_credentials_fails_with_a_clear_message(chart: Any) -> None:
    values = {"kafka": {"securityProtocol": "SASL_SSL", "saslMechanism": "PLAIN"}}
    with pytest.raises(helm_python.HelmRenderError, match=re.escape("kafka.sasl.existingSecret")):
        chart.render(values, name=RELEASE, namespace=NAMESPACE)


def test_notes_warn_when_workers_exceed_partitions(render: Any) -> None:
    rendered = render({"worker": {"replicas": 6}, "topics": {"partitions": 4}})
    warning = [line for line in rendered.notes.splitlines() if line.startswith("WARNING")]
    assert len(warning) == 1
    assert "worker.replicas (6) > topics.partitions (4)" in warning[0]
    assert "2 worker(s) will sit idle" in warning[0]
    assert "WARNING" not in render({"worker": {"replicas": 4}, "topics": {"partitions": 4}}).notes


def _param_paths() -> list[str]:
    return re.findall(r"^\s*## @param (\S+) ", (CHART_DIR / "values.yaml").read_text(), flags=re.M)


def _schema_at(schema: dict[str, Any], path: str) -> dict[str, Any]:
    node = schema
    for part in path.split("."):
        if "$ref" in node:  # "#/definitions/<name>"
            node = schema["definitions"][node["$ref"].rsplit("/", 1)[1]]
        node = node["properties"][part]
    return node


def test_every_value_is_documented_and_in_the_schema() -> None:
    values = _load(CHART_DIR / "values.yaml")
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    params = _param_paths()
    assert len(params) == len(set(params)), "duplicate @param"

    undocumented: list[str] = []

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, value in node.items():
            path = f"{prefix}{key}"
            if path in params:
                continue
            if isinstance(value, dict) and value:
                walk(value, f"{path}.")
            else:
                undocumented.append(path)

    walk(values, "")
    assert not undocumented, undocumented
    for path in params:
        node: Any = values
        for part in path.split("."):
            assert isinstance(node, dict) and part in node, f"@param {path} is not in values.yaml"
            node = node[part]
        _schema_at(schema, path)  # KeyError names a value the schema misses
    assert schema["additionalProperties"] is False
