"""The Helm chart under deploy/helm/selective-autonomy: lint, render and validate offline.

Everything runs in-process through helm-python-sdk (Helm SDK) and kubernetes-validate; no cluster
and no network. Scenarios are the chart's ci/values-*.yaml files plus one inline "everything on".
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

helm_python = pytest.importorskip("helm_python")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

from selective_autonomy.config import RegistryCompatibility, Settings, load_settings  # noqa: E402
from tests.unit.deploy.support import (  # noqa: E402
    CHART_DIR,
    EVERYTHING,
    NAMESPACE,
    RELEASE,
    SCENARIOS,
    Rendered,
    load_values,
)

KUBE_VERSION = "1.30.0"
SELECTOR_KEYS = {"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"}
HOOK_EVENTS = {"pre-install", "pre-upgrade"}
SENTINEL = "s3ntinel-Do-Not-Render"


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


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


ROLES = {
    "worker": {
        "SELAUTO_WORKER__DECIDE": "true",
        "SELAUTO_WORKER__FEEDBACK": "false",
        "SELAUTO_WORKER__LEARNING": "false",
    },
    "learner": {
        "SELAUTO_WORKER__DECIDE": "false",
        "SELAUTO_WORKER__FEEDBACK": "true",
        "SELAUTO_WORKER__LEARNING": "true",
    },
}


def _assert_decider_and_learner(rendered: Rendered, models_claim: str | None) -> None:
    """Deciders scale and only read the models; one learner (Recreate) records feedback, learns and
    writes the same models volume."""
    worker = rendered.one("Deployment", "worker")
    learner = rendered.one("Deployment", "learner")
    assert learner["spec"]["replicas"] == 1
    assert learner["spec"]["strategy"] == {"type": "Recreate"}
    mounts: dict[str, dict[str, Any]] = {}
    for component, workload in (("worker", worker), ("learner", learner)):
        (container,) = _containers(workload)
        assert container["name"] == component
        assert container["command"] + container["args"] == ["selauto", "worker"]
        env = _env(container)
        assert {name: env[name]["value"] for name in ROLES[component]} == ROLES[component], component
        mount = next(m for m in container["volumeMounts"] if m["name"] == "models")
        assert env["SELAUTO_MODELS_DIR"]["value"] == mount["mountPath"]
        volume = next(v for v in workload["spec"]["template"]["spec"]["volumes"] if v["name"] == "models")
        if models_claim is None:
            assert "emptyDir" in volume
        else:
            assert volume["persistentVolumeClaim"]["claimName"] == models_claim
        mounts[component] = {"mount": mount, "volume": volume, "container": container}
    assert mounts["worker"]["mount"]["readOnly"] is True
    assert mounts["learner"]["mount"].get("readOnly", False) is False, "the learner publishes model versions"
    assert mounts["learner"]["volume"].get("persistentVolumeClaim", {}).get("readOnly", False) is False
    if models_claim is not None:
        assert mounts["worker"]["volume"]["persistentVolumeClaim"]["readOnly"] is True
    assert mounts["worker"]["mount"]["mountPath"] == mounts["learner"]["mount"]["mountPath"]
    assert mounts["worker"]["mount"].get("subPath") == mounts["learner"]["mount"].get("subPath")
    worker_c, learner_c = mounts["worker"]["container"], mounts["learner"]["container"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert learner_c[probe] == worker_c[probe], probe
    assert learner_c["ports"][0]["name"] == "health"
    assert "Learner: exactly one pod" in rendered.notes


# --- lint and Kubernetes validation ------------------------------------------------------------


@pytest.mark.parametrize(
    "values_file", [None, "ci/values-default.yaml", "ci/values-production.yaml", "ci/values-lora.yaml"]
)
def test_lint_strict_has_no_errors_or_warnings(values_file: str | None) -> None:
    values = load_values(CHART_DIR / values_file) if values_file else None
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
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # custom resources: validated against their CRD schemas in test_monitoring.py
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
        if configmap["metadata"]["labels"]["app.kubernetes.io/component"] == "dashboard":
            continue  # the Grafana dashboard (test_monitoring.py)
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
    assert sorted(name.rsplit("-", 1)[1] for name in components) == ["console", "executor", "learner", "worker"]


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
    assert set(secret["data"]) == {"console-operators", "console-secret-key"}
    operators = json.loads(base64.b64decode(secret["data"]["console-operators"]))
    assert list(operators) == ["admin"] and len(operators["admin"]) == 40
    assert len(base64.b64decode(secret["data"]["console-secret-key"])) == 64
    console_env = _env(_containers(rendered.one("Deployment", "console"))[0])
    assert console_env["SELAUTO_CONSOLE__OPERATORS"]["valueFrom"]["secretKeyRef"] == {
        "name": secret["metadata"]["name"],
        "key": "console-operators",
    }
    assert console_env["SELAUTO_CONSOLE__SECRET_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "console-secret-key"
    assert console_env["SELAUTO_CONSOLE__COOKIE_SECURE"]["value"] == "false"
    assert console_env["SELAUTO_CONSOLE__AUDIT_RATE"]["value"] == "0.05"
    assert "port-forward svc/selauto-selective-autonomy-console" in rendered.notes
    assert 'Operator "admin" got a generated token' in rendered.notes
    assert 'get secret selauto-selective-autonomy -o jsonpath="{.data.console-operators}"' in rendered.notes
    assert "no feedback store" in rendered.notes
    assert "The learner keeps feedback" in rendered.notes and "lost with the pod" in rendered.notes
    assert "WARNING" not in rendered.notes
    _assert_decider_and_learner(rendered, models_claim=None)
    learner = rendered.one("Deployment", "learner")
    assert "SELAUTO_STORE__URL" not in _env(_containers(learner)[0])
    assert "the learner's new versions never reach the workers" in rendered.notes


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
    assert refs["SELAUTO_SCHEMA_REGISTRY__USERNAME"] == {"name": "selauto-schema-registry", "key": "username"}
    assert refs["SELAUTO_SCHEMA_REGISTRY__PASSWORD"] == {"name": "selauto-schema-registry", "key": "password"}
    assert 'Basic auth: keys "username" and "password" of Secret "selauto-schema-registry".' in rendered.notes
    assert "only look up the <topic>-value subjects" in rendered.notes
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://otel-collector.observability.svc:4318"
    assert env["SELAUTO_INFERENCE__URL"]["value"] == "http://selauto-selective-autonomy-vllm:8000/v1"
    assert env["SELAUTO_INFERENCE__MODEL"]["value"] == "selauto-policy"
    assert container["resources"]["limits"]["memory"] == "4Gi"
    assert env["SELAUTO_TELEMETRY__OTLP_ENDPOINT"]["value"] == "http://otel-collector.observability.svc:4318/v1/traces"
    assert env["SELAUTO_TELEMETRY__SERVICE_NAME"]["value"] == "selective-autonomy-worker"
    console_env = _env(_containers(rendered.one("Deployment", "console"))[0])
    assert console_env["SELAUTO_CONSOLE__OPERATORS"]["valueFrom"]["secretKeyRef"] == {
        "name": "selauto-console",
        "key": "operators",
    }
    assert console_env["SELAUTO_CONSOLE__SECRET_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "selauto-console",
        "key": "secret-key",
    }
    assert console_env["SELAUTO_CONSOLE__COOKIE_SECURE"]["value"] == "true", "the Ingress has TLS"
    assert 'key "operators" of Secret "selauto-console"' in rendered.notes
    assert "no feedback store" not in rendered.notes
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

    _assert_decider_and_learner(rendered, models_claim="selauto-models")
    learner = rendered.one("Deployment", "learner")
    (learner_container,) = _containers(learner)
    learner_env = _env(learner_container)
    assert learner_env["SELAUTO_STORE__URL"]["valueFrom"]["secretKeyRef"] == {"name": "selauto-store", "key": "dsn"}
    assert learner_env["SELAUTO_TELEMETRY__SERVICE_NAME"]["value"] == "selective-autonomy-learner"
    assert learner_container["resources"]["limits"]["memory"] == "8Gi"
    assert learner["spec"]["template"]["metadata"]["labels"]["cost-center"] == "support"
    data = next(v for v in learner["spec"]["template"]["spec"]["volumes"] if v["name"] == "data")
    assert data["persistentVolumeClaim"]["claimName"] == "selauto-learner-data"
    assert 'The models claim "selauto-models" is shared by every worker and the learner' in rendered.notes
    assert "ReadWriteMany" in rendered.notes
    assert "no feedback store" not in rendered.notes


def test_learner_can_be_disabled(render: Any) -> None:
    rendered = render({"learner": {"enabled": False}})
    assert not [d for d in rendered.of_kind("Deployment") if "learner" in d["metadata"]["name"]]
    env = _env(_containers(rendered.one("Deployment", "worker"))[0])
    assert {name: env[name]["value"] for name in ROLES["worker"]} == ROLES["worker"]
    assert "Learner: disabled (learner.enabled=false)" in rendered.notes
    assert "The learner keeps feedback" not in rendered.notes


def test_learner_extra_env_and_models_subpath(render: Any) -> None:
    values = {
        "worker": {"models": {"existingClaim": "models", "subPath": "selauto"}},
        "learner": {"extraEnv": [{"name": "SELAUTO_LEARNING__RETRAIN_EVERY_FEEDBACK", "value": "50"}]},
    }
    rendered = render(values)
    _assert_decider_and_learner(rendered, models_claim="models")
    (container,) = _containers(rendered.one("Deployment", "learner"))
    assert _env(container)["SELAUTO_LEARNING__RETRAIN_EVERY_FEEDBACK"]["value"] == "50"
    assert next(m for m in container["volumeMounts"] if m["name"] == "models")["subPath"] == "selauto"


def _lora_args(args: list[str]) -> list[str]:
    """The LoRA arguments of a vLLM command line: --enable-lora and the --max-* pairs after it."""
    if "--enable-lora" not in args:
        return []
    start = end = args.index("--enable-lora") + 1
    while end < len(args) and args[end] in {"--max-lora-rank", "--max-loras", "--max-cpu-loras"}:
        end += 2
    return args[start - 1 : end]


def test_lora_scenario(render: Any) -> None:
    """One vLLM serves the base with runtime adapter loading, and reads the workers' models claim at
    the workers' path: the adapter paths they send (under SELAUTO_MODELS_DIR) resolve in its pod."""
    from selective_autonomy.inference.llm.server import LoRAServing

    rendered = render(SCENARIOS["lora"])
    vllm = rendered.one("Deployment", "vllm")
    (server,) = _containers(vllm)
    assert server["args"][:2] == ["--model", "/base-model/base"]
    assert _lora_args(server["args"]) == LoRAServing(max_lora_rank=16, max_loras=2, max_cpu_loras=8).arguments()
    assert _lora_args(server["args"]) == [
        "--enable-lora",
        "--max-lora-rank",
        "16",
        "--max-loras",
        "2",
        "--max-cpu-loras",
        "8",
    ]
    assert _env(server)["VLLM_ALLOW_RUNTIME_LORA_UPDATING"]["value"] == "True"
    mounts = {m["name"]: m for m in server["volumeMounts"]}
    assert mounts["model"] == {"name": "model", "mountPath": "/base-model", "readOnly": True}
    assert mounts["worker-models"] == {
        "name": "worker-models",
        "mountPath": "/models",
        "readOnly": True,
        "subPath": "selauto",
    }
    volumes = {v["name"]: v for v in vllm["spec"]["template"]["spec"]["volumes"]}
    assert volumes["model"]["persistentVolumeClaim"] == {"claimName": "selauto-base-model", "readOnly": True}
    assert volumes["worker-models"]["persistentVolumeClaim"] == {"claimName": "selauto-models", "readOnly": True}

    _assert_decider_and_learner(rendered, models_claim="selauto-models")
    for component in ("worker", "learner"):
        (container,) = _containers(rendered.one("Deployment", component))
        env = _env(container)
        assert env["SELAUTO_INFERENCE__URL"]["value"] == "http://selauto-selective-autonomy-vllm:8000/v1", component
        assert "SELAUTO_INFERENCE__MODEL" not in env, f"{component}: a fixed name would override the adapter's"
        assert "SELAUTO_INFERENCE__CRITIC_URL" not in env, f"{component}: the critic falls back to the url"
        models = next(m for m in container["volumeMounts"] if m["name"] == "models")
        assert (models["mountPath"], models["subPath"]) == (mounts["worker-models"]["mountPath"], "selauto")
        assert env["SELAUTO_MODELS_DIR"]["value"] == mounts["worker-models"]["mountPath"]
    assert "LoRA: the policy and critic adapters run on this base" in rendered.notes
    assert 'claim "selauto-models"' in rendered.notes


def test_lora_mounts_a_models_claim_that_holds_the_weights_through_one_volume(render: Any) -> None:
    """The production scenario keeps the weights on the models claim: it is mounted twice from the one
    volume (two volumes of one PVC in a pod can hang its start), with vLLM's defaults otherwise."""
    values = _deep_merge(
        SCENARIOS["production"], {"vllm": {"model": {"mountPath": "/base"}, "lora": {"enabled": True}}}
    )
    rendered = render(values)
    vllm = rendered.one("Deployment", "vllm")
    (server,) = _containers(vllm)
    assert _lora_args(server["args"]) == ["--enable-lora", "--max-lora-rank", "8", "--max-loras", "4"]
    assert server["args"][-2:] == ["--max-model-len=4096", "--gpu-memory-utilization=0.90"]
    assert [(m["name"], m["mountPath"], m.get("subPath")) for m in server["volumeMounts"] if m.get("readOnly")] == [
        ("model", "/base", None),
        ("model", "/models", None),
    ]
    claims = [
        v["persistentVolumeClaim"] for v in vllm["spec"]["template"]["spec"]["volumes"] if "persistentVolumeClaim" in v
    ]
    assert claims == [{"claimName": "selauto-models", "readOnly": True}]
    env = _env(_containers(rendered.one("Deployment", "worker"))[0])
    assert "SELAUTO_INFERENCE__MODEL" not in env and "SELAUTO_INFERENCE__URL" in env


def test_lora_is_off_by_default(render: Any) -> None:
    rendered = render(SCENARIOS["production"])
    (server,) = _containers(rendered.one("Deployment", "vllm"))
    assert not _lora_args(server["args"])
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING" not in _env(server)
    assert [m["name"] for m in server["volumeMounts"]] == ["model", "shm"]
    assert "LoRA:" not in rendered.notes


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"worker": {"models": {"existingClaim": ""}}}, "vllm.lora.enabled needs worker.models.existingClaim"),
        ({"vllm": {"model": {"mountPath": "/models/"}}}, "set vllm.model.mountPath to another path"),
        ({"vllm": {"lora": {"maxLoras": 4, "maxCpuLoras": 2}}}, "vllm.lora.maxCpuLoras (2) must be at least"),
    ],
    ids=["no-models-claim", "same-mount-path", "cpu-loras-below-loras"],
)
def test_lora_misconfiguration_fails_with_a_clear_message(chart: Any, values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm_python.HelmRenderError, match=re.escape(message)):
        chart.render(_deep_merge(SCENARIOS["lora"], values), name=RELEASE, namespace=NAMESPACE)


def test_schema_accepts_exactly_the_lora_ranks_vllm_accepts(chart: Any) -> None:
    from selective_autonomy.inference.llm.server import LORA_RANKS

    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    assert tuple(_schema_at(schema, "vllm.lora.maxLoraRank")["enum"]) == LORA_RANKS
    for rank in LORA_RANKS:
        chart.validate_schema({"vllm": {"lora": {"maxLoraRank": rank}}})


def test_inline_credentials_are_never_rendered_with_existing_secrets(render: Any) -> None:
    values = _deep_merge(
        SCENARIOS["production"],
        {
            "kafka": {"sasl": {"username": SENTINEL, "password": SENTINEL}},
            "store": {"url": SENTINEL},
            "console": {"operators": {"alice": SENTINEL}, "secretKey": SENTINEL},
            "schemaRegistry": {"basicAuth": {"username": SENTINEL, "password": SENTINEL}},
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
    operators = decoded.pop("console-operators")
    assert json.loads(operators) == {"alice": "inline-token", "bob": "another-inline-token"}
    assert decoded == {
        "kafka-sasl-username": "selauto",
        "kafka-sasl-password": "inline-password",
        "console-secret-key": "inline-secret-key",
        "store-url": "postgresql+psycopg://selauto:pw@db:5432/selauto",
        "schema-registry-username": "selauto-registry",
        "schema-registry-password": "registry-inline-password",
    }
    assert "Operators: alice, bob;" in rendered.notes
    for component in ("worker", "learner", "console", "executor"):
        env = _env(_containers(rendered.one("Deployment", component))[0])
        assert env["SELAUTO_KAFKA__SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
        assert env["SELAUTO_STORE__URL"]["valueFrom"]["secretKeyRef"]["key"] == "store-url"
    for component in ("worker", "learner"):
        env = _env(_containers(rendered.one("Deployment", component))[0])
        assert env["SELAUTO_INFERENCE__URL"]["value"] == "http://inference.example:8000/v1", component
    _assert_decider_and_learner(rendered, models_claim=None)
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
        {"vllm": {"lora": {"maxLoraRank": 4}}},
        {"vllm": {"lora": {"maxLoraRank": "8"}}},
        {"vllm": {"lora": {"maxLoras": 0}}},
        {"vllm": {"lora": {"maxCpuLoras": 0}}},
        {"vllm": {"lora": {"enabled": "yes"}}},
        {"vllm": {"lora": {"rank": 8}}},
        {"worker": {"pdb": {"minAvailable": "half"}}},
        {"console": {"service": {"type": "Bogus"}}},
        {"workers": {"replicas": 2}},
        {"worker": {"replica": 2}},
        {"console": {"token": "a-removed-value"}},
        {"console": {"operators": {"alice": "short"}}},
        {"console": {"operators": {"": "long-enough-token"}}},
        {"console": {"cookieSecure": "yes"}},
        {"otel": {"protocol": "grpc"}},
        {"learner": {"replicas": 2}},
        {"learner": {"enabled": "yes"}},
        {"learner": {"port": 0}},
        {"learner": {"data": {"existingClaim": "Not_A_Name"}}},
        {"schemaRegistry": {"compatibility": "STRICT"}},
        {"schemaRegistry": {"compatibility": "backward"}},
        {"schemaRegistry": {"autoRegister": "yes"}},
        {"schemaRegistry": {"timeoutS": 0}},
        {"schemaRegistry": {"maxRetries": -1}},
        {"schemaRegistry": {"url": "https://user:secret@registry:8081"}},
        {"schemaRegistry": {"basicAuth": {"user": "selauto"}}},
        {"schemaRegistry": {"tls": {"caSecret": "Not_A_Name"}}},
        {"schemaRegistry": {"tls": {"clientSecretKeyKey": ""}}},
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
    values = load_values(CHART_DIR / "values.yaml")
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


# --- the chart against the code: every SELAUTO_* env var is a setting, every command exists ----------

# Representative values for env vars read from Secrets the chart does not render (existingSecret),
# each of the shape selauto expects. Chart-managed Secrets are decoded from the render instead.
SECRET_PLACEHOLDERS = {
    "SELAUTO_KAFKA__SASL_USERNAME": "u",
    "SELAUTO_KAFKA__SASL_PASSWORD": "p",
    "SELAUTO_STORE__URL": "postgresql+psycopg://u:p@h/db",
    "SELAUTO_CONSOLE__OPERATORS": '{"alice": "a-long-token"}',
    "SELAUTO_CONSOLE__SECRET_KEY": "0123456789abcdef0123456789abcdef",
    "SELAUTO_SCHEMA_REGISTRY__USERNAME": "registry-user",
    "SELAUTO_SCHEMA_REGISTRY__PASSWORD": "registry-password",
    "SELAUTO_SCHEMA_REGISTRY__SSL_KEY_PASSWORD": "key-password",
}

# `selauto` commands the chart may run before they exist in selective_autonomy/cli.py; each entry
# needs a comment naming who adds it. Empty: `executor` landed. Any other unknown command fails.
PENDING_COMMANDS: frozenset[str] = frozenset()


def _selauto_containers(rendered: Rendered) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, container) for every container running the selauto image (Deployments and Jobs)."""
    image = "ghcr.io/selective-autonomy/selective-autonomy"
    found = []
    for workload in rendered.of_kind("Deployment") + rendered.of_kind("Job"):
        for container in _containers(workload):
            if container["image"].startswith(image):
                found.append((workload, container))
    return found


def _env_for_settings(rendered: Rendered, workload: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
    """The container's SELAUTO_* variables as the process would see them (Secrets resolved)."""
    secrets = {
        doc["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in doc.get("data", {}).items()}
        for doc in rendered.of_kind("Secret")
    }
    env: dict[str, str] = {}
    for item in container.get("env", []):
        name = item["name"]
        if not name.startswith("SELAUTO_"):
            continue
        if "value" in item:
            env[name] = item["value"]
            continue
        ref = item["valueFrom"]["secretKeyRef"]
        if ref["name"] in secrets:
            assert ref["key"] in secrets[ref["name"]], f"{name}: key {ref['key']} missing in Secret {ref['name']}"
            env[name] = secrets[ref["name"]][ref["key"]]
        else:
            assert name in SECRET_PLACEHOLDERS, f"{name} comes from an existing Secret: add a placeholder value"
            env[name] = SECRET_PLACEHOLDERS[name]
    assert not container.get("envFrom"), "envFrom would hide SELAUTO_* names from this test"
    return env


def _unknown_setting(name: str) -> str | None:
    """Why SELAUTO_<A>__<B>... names no field of Settings (pydantic-settings silently ignores an
    unknown top-level name; nested ones fail through extra="forbid", checked by load_settings)."""
    from pydantic import BaseModel

    from selective_autonomy.config import CONFIG_FILE_ENV

    if name == CONFIG_FILE_ENV:
        return None
    model: type[BaseModel] | None = Settings
    for part in name.removeprefix("SELAUTO_").lower().split("__"):
        if model is None:  # below a dict or scalar field: keys are data
            return None
        field = model.model_fields.get(part)
        if field is None:
            return f"{name}: {model.__name__} has no field {part!r}"
        annotation = field.annotation
        candidates = [annotation, *typing.get_args(annotation)]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return None


def _pod_settings(
    rendered: Rendered,
    workload: dict[str, Any],
    container: dict[str, Any],
    env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    """The settings ``container`` would load: ``env`` (from :func:`_env_for_settings`) and the settings
    file of the ConfigMap mounted where SELAUTO_CONFIG_FILE points."""
    from selective_autonomy.config import CONFIG_FILE_ENV

    where = f"{workload['kind']}/{container['name']}"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert env[CONFIG_FILE_ENV] == f"{mount['mountPath']}/settings.yaml", where
    volume = next(v for v in workload["spec"]["template"]["spec"]["volumes"] if v["name"] == "config")
    configmaps = {doc["metadata"]["name"]: doc for doc in rendered.of_kind("ConfigMap")}
    settings_file = tmp_path / f"{workload['metadata']['name']}.yaml"
    settings_file.write_text(configmaps[volume["configMap"]["name"]]["data"]["settings.yaml"])
    with monkeypatch.context() as patched:
        for name in [n for n in os.environ if n.startswith("SELAUTO_")]:
            patched.delenv(name)
        for name, value in {**env, CONFIG_FILE_ENV: str(settings_file)}.items():
            patched.setenv(name, value)
        return load_settings()  # raises on any nested key selauto does not know


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_selauto_env_var_is_a_setting_selauto_accepts(
    render: Any, scenario: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered = render(SCENARIOS[scenario])
    checked = set()
    for workload, container in _selauto_containers(rendered):
        where = f"{workload['kind']}/{container['name']}"
        env = _env_for_settings(rendered, workload, container)
        unknown = [reason for name in env if (reason := _unknown_setting(name))]
        assert not unknown, f"{where}: {unknown}"

        settings = _pod_settings(rendered, workload, container, env, tmp_path, monkeypatch)

        assert str(settings.data_dir) == env["SELAUTO_DATA_DIR"]
        if container["name"] in ROLES:  # `selauto worker` as a decider or as the learner
            assert settings.worker.health_port == container["ports"][0]["containerPort"]
            role = ROLES[container["name"]]
            assert settings.worker.decide is (role["SELAUTO_WORKER__DECIDE"] == "true"), where
            assert settings.worker.feedback is (role["SELAUTO_WORKER__FEEDBACK"] == "true"), where
            assert settings.worker.learning is (role["SELAUTO_WORKER__LEARNING"] == "true"), where
            assert str(settings.models_dir) == env["SELAUTO_MODELS_DIR"]
        if container["name"] == "executor":
            assert settings.executor.health_port == container["ports"][0]["containerPort"]
        if container["name"] == "console":
            assert settings.console.operators, "nobody could log in"
            assert settings.console.secret_key is not None, "sessions would end on every restart"
        if "SELAUTO_KAFKA__SASL_PASSWORD" in env:
            assert settings.kafka.sasl_password is not None and settings.kafka.sasl_mechanism
        if SCENARIOS[scenario].get("otel", {}).get("endpoint"):
            assert settings.telemetry.otlp_endpoint and settings.telemetry.otlp_endpoint.endswith("/v1/traces")
        if container["name"] == "topics":
            assert not [n for n in env if n.startswith("SELAUTO_SCHEMA_REGISTRY__")], "the topic Job builds no codec"
        else:
            registry = settings.schema_registry
            assert registry.url == (SCENARIOS[scenario].get("schemaRegistry", {}).get("url") or None), where
            for field in REGISTRY_FILES:
                if getattr(registry, field) is not None:
                    _mounted_secret_file(workload, container, getattr(registry, field))
        checked.add(container["name"])
    expected = {"worker", "learner", "console", "topics"} | ({"executor"} if scenario == "everything" else set())
    assert checked == expected


def test_env_check_catches_a_setting_selauto_does_not_have(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bug this guards against: the console once got SELAUTO_CONSOLE__TOKEN."""
    from pydantic import ValidationError

    assert _unknown_setting("SELAUTO_CONSOLE__OPERATORS") is None
    assert _unknown_setting("SELAUTO_KAFKA__EXTRA__LINGER_MS") is None  # a dict: keys are data
    assert _unknown_setting("SELAUTO_TOKEN") is not None  # ignored by pydantic-settings, caught here
    assert _unknown_setting("SELAUTO_CONSOLE__TOKEN") is not None
    for name in [n for n in os.environ if n.startswith("SELAUTO_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SELAUTO_CONSOLE__TOKEN", "t0ken-t0ken")
    with pytest.raises(ValidationError, match=re.escape("console.token")):
        load_settings()


def _command_path(args: list[str]) -> tuple[list[str], Any]:
    """Walk the `selauto` command tree along ``args``: (the command names, the leaf command or None).

    Groups are recognised by their ``commands`` map (typer may vendor its own click).
    """
    import typer

    from selective_autonomy.cli import app

    command: Any = typer.main.get_command(app)
    path: list[str] = []
    for token in args:
        if not hasattr(command, "commands") or token.startswith("-"):
            break
        path.append(token)
        command = command.commands.get(token)
        if command is None:
            return path, None
    return path, None if hasattr(command, "commands") else command


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_container_runs_an_existing_selauto_command(render: Any, scenario: str) -> None:
    rendered = render(SCENARIOS[scenario])
    unknown = []
    for workload, container in _selauto_containers(rendered):
        assert container["command"] == ["selauto"], "the image's ENTRYPOINT is selauto: never double it"
        args = container.get("args", [])
        path, command = _command_path(args)
        if command is None:
            if " ".join(path) not in PENDING_COMMANDS:
                unknown.append(f"{workload['metadata']['name']}: selauto {' '.join(args)}")
            continue
        options = {opt for param in command.params for opt in param.opts}
        given = {arg.split("=", 1)[0] for arg in args if arg.startswith("--")}
        assert given <= options, f"selauto {' '.join(path)} has no option {sorted(given - options)}"
    assert not unknown, unknown
    for pending in PENDING_COMMANDS:
        assert _command_path(pending.split())[1] is None, f"`selauto {pending}` exists now: drop it from PENDING"


# --- console session cookie, health ports, secret checksum ---------------------------------------


@pytest.mark.parametrize(
    ("console", "expected"),
    [
        ({}, "false"),
        ({"ingress": {"enabled": True}}, "false"),
        ({"ingress": {"enabled": True, "tls": [{"secretName": "tls", "hosts": ["a.example"]}]}}, "true"),
        (
            {
                "ingress": {"enabled": True, "tls": [{"secretName": "tls", "hosts": ["a.example"]}]},
                "cookieSecure": False,
            },
            "false",
        ),
        ({"cookieSecure": True}, "true"),
    ],
)
def test_console_cookie_secure_follows_ingress_tls(render: Any, console: dict[str, Any], expected: str) -> None:
    env = _env(_containers(render({"console": console}).one("Deployment", "console"))[0])
    assert env["SELAUTO_CONSOLE__COOKIE_SECURE"]["value"] == expected


def test_health_ports_reach_selauto(render: Any) -> None:
    rendered = render(
        _deep_merge(
            SCENARIOS["everything"], {"worker": {"port": 7070}, "learner": {"port": 7072}, "executor": {"port": 7071}}
        )
    )
    for component, port, var in (
        ("worker", 7070, "SELAUTO_WORKER__HEALTH_PORT"),
        ("learner", 7072, "SELAUTO_WORKER__HEALTH_PORT"),
        ("executor", 7071, "SELAUTO_EXECUTOR__HEALTH_PORT"),
    ):
        (container,) = _containers(rendered.one("Deployment", component))
        assert container["ports"][0]["containerPort"] == port
        assert _env(container)[var]["value"] == str(port)


def test_credentials_roll_the_pods_through_a_secret_checksum(render: Any) -> None:
    def checksums(values: dict[str, Any]) -> dict[str, str | None]:
        rendered = render(values)
        return {
            c: rendered.one("Deployment", c)["spec"]["template"]["metadata"]["annotations"].get("checksum/secret")
            for c in ("worker", "learner", "console", "executor")
        }

    before = checksums(SCENARIOS["everything"])
    after = checksums(_deep_merge(SCENARIOS["everything"], {"console": {"operators": {"carol": "third-token"}}}))
    assert all(before.values()) and all(before[c] != after[c] for c in before)
    production = _deep_merge(SCENARIOS["production"], {"executor": {"enabled": True}})
    assert set(checksums(production).values()) == {None}, "no chart Secret, nothing to hash"


# --- the Schema Registry -------------------------------------------------------------------------

# The components that build a codec (streams/serialization.py codec_for) and so talk to the registry.
CODEC_COMPONENTS = ("worker", "learner", "console", "executor")
REGISTRY_FILES = ("ssl_ca_location", "ssl_certificate_location", "ssl_key_location")

REGISTRY_EXISTING_SECRETS: dict[str, Any] = {
    "schemaRegistry": {
        "url": "https://registry.kafka.svc:8081",
        "autoRegister": False,
        "compatibility": "",
        "basicAuth": {
            "existingSecret": "registry-credentials",
            "existingSecretUsernameKey": "user",
            "existingSecretPasswordKey": "pass",
        },
        "tls": {
            "caSecret": "registry-ca",
            "clientSecret": "registry-client",
            "clientSecretCertKey": "cert.pem",
            "clientSecretKeyKey": "key.pem",
        },
    },
    "executor": {"enabled": True},
}


def _mounted_secret_file(workload: dict[str, Any], container: dict[str, Any], path: Path) -> tuple[str, str]:
    """(Secret name, key) of the Secret item that ``container`` sees at ``path``; fails when none does."""
    mount = next((m for m in container["volumeMounts"] if Path(m["mountPath"]) == path.parent), None)
    assert mount is not None, f"{container['name']}: nothing is mounted at {path.parent}"
    assert mount.get("readOnly") is True, mount
    volume = next(v for v in workload["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"])
    item = next((i for i in volume["secret"]["items"] if i["path"] == path.name), None)
    assert item is not None, f"{container['name']}: volume {volume['name']} has no item {path.name}"
    return volume["secret"]["secretName"], item["key"]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            EVERYTHING,
            {
                "secret": f"{RELEASE}-selective-autonomy",
                "keys": ("schema-registry-username", "schema-registry-password"),
                "username": "selauto-registry",
                "password": "registry-inline-password",
                "files": {
                    "ssl_ca_location": ("registry-ca", "bundle.pem"),
                    "ssl_certificate_location": ("registry-client", "tls.crt"),
                    "ssl_key_location": ("registry-client", "tls.key"),
                },
                "key_password": {"name": "registry-client", "key": "key-password"},
                "auto_register": True,
                "compatibility": RegistryCompatibility.FULL_TRANSITIVE,
                "timeout_s": 2.5,
                "max_retries": 4,
            },
        ),
        (
            REGISTRY_EXISTING_SECRETS,
            {
                "secret": "registry-credentials",
                "keys": ("user", "pass"),
                "username": SECRET_PLACEHOLDERS["SELAUTO_SCHEMA_REGISTRY__USERNAME"],
                "password": SECRET_PLACEHOLDERS["SELAUTO_SCHEMA_REGISTRY__PASSWORD"],
                "files": {
                    "ssl_ca_location": ("registry-ca", "ca.crt"),
                    "ssl_certificate_location": ("registry-client", "cert.pem"),
                    "ssl_key_location": ("registry-client", "key.pem"),
                },
                "key_password": None,
                "auto_register": False,
                "compatibility": None,
                "timeout_s": 5.0,
                "max_retries": 2,
            },
        ),
    ],
    ids=["chart-secret", "existing-secret"],
)
def test_registry_settings_reach_every_codec_component(
    render: Any, values: dict[str, Any], expected: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered = render(values)
    for component in CODEC_COMPONENTS:
        workload = rendered.one("Deployment", component)
        (container,) = _containers(workload)
        env = _env_for_settings(rendered, workload, container)
        registry = _pod_settings(rendered, workload, container, env, tmp_path, monkeypatch).schema_registry

        assert registry.url == values["schemaRegistry"]["url"], component
        assert registry.username == expected["username"], component
        assert registry.password is not None and registry.password.get_secret_value() == expected["password"]
        refs = {n: e["valueFrom"]["secretKeyRef"] for n, e in _env(container).items() if "valueFrom" in e}
        user_key, password_key = expected["keys"]
        assert refs["SELAUTO_SCHEMA_REGISTRY__USERNAME"] == {"name": expected["secret"], "key": user_key}
        assert refs["SELAUTO_SCHEMA_REGISTRY__PASSWORD"] == {"name": expected["secret"], "key": password_key}
        assert refs.get("SELAUTO_SCHEMA_REGISTRY__SSL_KEY_PASSWORD") == expected["key_password"], component
        assert (registry.ssl_key_password is not None) is (expected["key_password"] is not None)
        files = {field: _mounted_secret_file(workload, container, getattr(registry, field)) for field in REGISTRY_FILES}
        assert files == expected["files"], component
        assert registry.auto_register is expected["auto_register"]
        assert registry.compatibility == expected["compatibility"]
        assert registry.timeout_s == expected["timeout_s"]
        assert registry.max_retries == expected["max_retries"]

    # The topic Job creates topics only: no registry credentials, no client key.
    job = rendered.one("Job", "topics")
    (container,) = _containers(job)
    assert not [e["name"] for e in container["env"] if e["name"].startswith("SELAUTO_SCHEMA_REGISTRY__")]
    assert not [v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"].startswith("schema-registry")]
    _pod_settings(rendered, job, container, _env_for_settings(rendered, job, container), tmp_path, monkeypatch)
    assert f"Schema Registry: {values['schemaRegistry']['url']}." in rendered.notes
    assert "the console and the executor" in rendered.notes


def test_registry_password_stays_in_the_secret_and_rolls_the_pods(render: Any) -> None:
    def with_password(password: str) -> Rendered:
        rendered: Rendered = render(_deep_merge(EVERYTHING, {"schemaRegistry": {"basicAuth": {"password": password}}}))
        return rendered

    rendered = with_password(SENTINEL)
    encoded = base64.b64encode(SENTINEL.encode()).decode()
    for path, text in rendered.raw.items():
        if path.endswith("templates/secret.yaml"):
            assert encoded in text
        else:
            assert SENTINEL not in text and encoded not in text, path
    for configmap in rendered.of_kind("ConfigMap"):
        assert "password" not in configmap["data"].get("settings.yaml", ""), configmap["metadata"]["name"]
    other = with_password("another-password")
    for component in CODEC_COMPONENTS:
        annotations = [
            r.one("Deployment", component)["spec"]["template"]["metadata"]["annotations"] for r in (rendered, other)
        ]
        assert annotations[0]["checksum/secret"] != annotations[1]["checksum/secret"], component


@pytest.mark.parametrize(
    "values",
    [
        {},
        {  # registry values without a URL are ignored, like SASL credentials without SASL
            "schemaRegistry": {
                "basicAuth": {"username": "u", "password": SENTINEL},
                "tls": {"caSecret": "registry-ca", "clientSecret": "registry-client"},
                "compatibility": "NONE",
            }
        },
    ],
    ids=["default", "no-url"],
)
def test_without_a_registry_url_nothing_of_the_registry_renders(render: Any, values: dict[str, Any]) -> None:
    rendered = render(values)
    for workload, container in _selauto_containers(rendered):
        assert not [e["name"] for e in container["env"] if "SCHEMA_REGISTRY" in e["name"]], workload["metadata"]["name"]
        assert not [m for m in container["volumeMounts"] if m["name"].startswith("schema-registry")]
    for configmap in rendered.of_kind("ConfigMap"):
        assert "schema_registry" not in configmap["data"].get("settings.yaml", "")
    for secret in rendered.of_kind("Secret"):
        assert not [key for key in secret["data"] if key.startswith("schema-registry")]
    assert SENTINEL not in "\n".join(rendered.raw.values())
    assert "Schema Registry" not in rendered.notes


def test_registry_basic_auth_needs_both_username_and_password(chart: Any) -> None:
    values = {"schemaRegistry": {"url": "https://registry:8081", "basicAuth": {"username": "selauto"}}}
    with pytest.raises(helm_python.HelmRenderError, match=re.escape("schemaRegistry.basicAuth.existingSecret")):
        chart.render(values, name=RELEASE, namespace=NAMESPACE)


def test_schema_accepts_exactly_the_compatibility_levels_of_the_settings(chart: Any) -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    levels = schema["properties"]["schemaRegistry"]["properties"]["compatibility"]["enum"]
    assert levels == ["", *(level.value for level in RegistryCompatibility)]
    for level in levels:
        chart.validate_schema({"schemaRegistry": {"compatibility": level}})


@pytest.mark.parametrize(
    ("compatibility", "expected"),
    [("", None), (None, None), ("NONE", RegistryCompatibility.NONE), ("BACKWARD", RegistryCompatibility.BACKWARD)],
)
def test_registry_compatibility_reaches_the_settings_file(
    render: Any, compatibility: str | None, expected: RegistryCompatibility | None, tmp_path: Path
) -> None:
    """An empty or null level is written as null: selauto leaves the subject's level alone."""
    rendered = render({"schemaRegistry": {"url": "http://registry:8081", "compatibility": compatibility}})
    path = tmp_path / "settings.yaml"
    path.write_text(rendered.one("ConfigMap", "config")["data"]["settings.yaml"])
    assert load_settings(path).schema_registry.compatibility == expected
