"""The chart's monitoring: ServiceMonitor and PrometheusRule against the prometheus-operator CRD
schemas, every PromQL expression through a real parser, the Grafana dashboard through Grafana's
schema models, and every metric the alerts and the dashboard query against what the components
actually serve on ``/metrics``: a rule can never silently watch a metric nobody exports.

Offline and in-process, like test_chart.py: helm-python-sdk renders, the CRD models come from
``cloudcoil-models-prometheus-operator`` (generated from the operator's CRDs), PromQL is parsed by
``promql-parser``, dashboards by ``grafana-foundation-sdk``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr, ValidationError

from selective_autonomy.agents.gate import GateOutcome
from selective_autonomy.agents.metrics import RuntimeMetrics
from selective_autonomy.config import ConsoleSettings, IngestSettings, Settings, TelemetrySettings
from selective_autonomy.console.app import create_app
from selective_autonomy.console.inbox import Inbox
from selective_autonomy.edges.executor.adapters import InMemoryPlatform
from selective_autonomy.edges.executor.health import health_app
from selective_autonomy.edges.executor.ledger import MemoryLedger
from selective_autonomy.edges.executor.meters import register_executor_meters
from selective_autonomy.edges.executor.retry import Backoff
from selective_autonomy.edges.executor.runner import ExecutorRunner
from selective_autonomy.edges.executor.service import ActionExecutor
from selective_autonomy.edges.ingest.app import create_ingest_app
from selective_autonomy.schemas.event_parts import Action, DeferralReason, Verdict
from selective_autonomy.schemas.events import CopilotFeedback
from selective_autonomy.streams.lag import PartitionLag
from selective_autonomy.streams.meters import process_meters
from tests.factories import BILLING_TYPED as SCHEMA
from tests.factories import deferral
from tests.support.fakes import ListPublisher, Schemas

helm_python = pytest.importorskip("helm_python")
promql = pytest.importorskip("promql_parser")
operator_crds = pytest.importorskip("cloudcoil.models.prometheus_operator.v1")
grafana_plugins = pytest.importorskip("grafana_foundation_sdk.cog.plugins")
grafana_encoder = pytest.importorskip("grafana_foundation_sdk.cog.encoder")
grafana_dashboard = pytest.importorskip("grafana_foundation_sdk.models.dashboard")

from tests.unit.deploy.support import CHART_DIR, NAMESPACE, RELEASE, SCENARIOS, Rendered  # noqa: E402

DASHBOARD_FILE = CHART_DIR / "dashboards" / "selective-autonomy.json"
MONITORING = {"ServiceMonitor", "PrometheusRule"}
ALL_ON: dict[str, Any] = {
    "executor": {"enabled": True},
    "metrics": {
        "serviceMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "dashboard": {"enabled": True},
    },
}
# Labels Prometheus puts on every scraped series: the target's (namespace, job, pod, ...) and the
# Service labels the chart's ServiceMonitor copies (targetLabels).
TARGET_LABELS = {
    "namespace",
    "job",
    "instance",
    "pod",
    "service",
    "container",
    "endpoint",
    "app_kubernetes_io_instance",
    "app_kubernetes_io_component",
}
# Labels whose values are the members of an enum in the code: a matcher on them must name members.
ENUM_LABELS: dict[str, set[str]] = {
    "outcome": {o.value for o in GateOutcome},
    "reason": {r.value for r in DeferralReason},
    "verdict": {v.value for v in Verdict},
}
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__range"}


# --- what the components serve on /metrics -------------------------------------------------------


def _families(text: str) -> dict[str, set[str]]:
    """Sample name -> its label names, from a /metrics body (prometheus_client's parser: the body
    must be valid exposition text)."""
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, set()).update(sample.labels)
    return found


def _worker_text() -> str:
    """The worker's instruments, each recorded once through the calls the agents make."""
    meters = process_meters(TelemetrySettings(service_name="worker"))
    metrics = RuntimeMetrics(meter_provider=meters.provider)
    metrics.on_event()
    metrics.on_decision("execute", None, 12.0, "billing")
    metrics.on_decision("defer", "below_threshold", 40.0, "billing")
    metrics.on_dead_letter("ui.state")
    metrics.on_model_timeout(1)
    metrics.on_consumer_lag([PartitionLag(topic="ui.state", partition=0, committed=3, earliest=0, high_watermark=9)])
    metrics.on_feedback(
        CopilotFeedback(
            session_id="s1",
            process_id="billing",
            business_cluster="retail",
            state_version=1,
            suggestion=Action(action_type="lookup_order"),
            suggestion_action_id="a1",
            verdict=Verdict.accepted,
            operator_id="op1",
            latency_ms=900,
            inclusion_probability=0.05,
        )
    )
    metrics.on_stages("billing", ["retail", "*"], ["retail"])
    return meters.exposition.render()[0].decode()


def _console_text() -> str:
    meters = process_meters(TelemetrySettings(service_name="console"))
    inbox = Inbox()
    inbox.on_deferral(deferral("s1", 3))
    console = ConsoleSettings(operators={"alice": SecretStr("alice-token-1")})
    app = create_app(
        Settings(),
        console=console,
        inbox=inbox,
        start_feed=False,
        meter_provider=meters.provider,
        exposition=meters.exposition,
    )
    with TestClient(app) as client:
        response = client.get("/metrics")  # no credentials: open, like /healthz
        assert response.status_code == 200
        return response.text


def _ingest_text() -> str:
    meters = process_meters(TelemetrySettings(service_name="ingest"))
    settings = Settings(ingest=IngestSettings(tokens={"crm": SecretStr("ingest-token-0123456789")}))
    app = create_ingest_app(
        settings,
        publisher=ListPublisher(),
        schemas=Schemas(SCHEMA),
        meter_provider=meters.provider,
        exposition=meters.exposition,
    )
    with TestClient(app) as client:
        response = client.get("/metrics")
        assert response.status_code == 200
        return response.text


def _executor_text() -> str:
    meters = process_meters(TelemetrySettings(service_name="executor"))
    executor = ActionExecutor(InMemoryPlatform(), MemoryLedger(), Backoff())
    runner = ExecutorRunner(Settings(), executor, ListPublisher())
    register_executor_meters(runner, meters.provider)  # as run_executor does
    response = TestClient(health_app(runner, meters.exposition)).get("/metrics")
    assert response.status_code == 200
    return response.text


@pytest.fixture(scope="module")
def exported() -> dict[str, set[str]]:
    """Every sample name the worker, console, ingest and executor serve, with its label names."""
    found: dict[str, set[str]] = {}
    for text in (_worker_text(), _console_text(), _ingest_text(), _executor_text()):
        for name, labels in _families(text).items():
            found.setdefault(name, set()).update(labels)
    return found


def test_every_component_serves_its_metrics(exported: dict[str, set[str]]) -> None:
    assert {
        "selauto_decisions_total",
        "selauto_decision_latency_milliseconds_bucket",
        "selauto_audits_weighted_total",
        "selauto_stage_demotions_total",
        "selauto_console_deferrals_waiting",
        "selauto_ingest_events_total",
        "selauto_executor_actions_total",
    } <= set(exported)
    assert exported["selauto_decisions_total"] >= {"outcome", "process"}
    assert exported["selauto_dead_letters_total"] == {"topic"}, "worker and executor label dead letters alike"


# --- PromQL: parse, and check names and labels against what is exported ---------------------------


def _selectors(expr: Any) -> list[Any]:
    found: list[Any] = []

    def visit(node: Any) -> bool:
        if isinstance(node, promql.VectorSelector):
            found.append(node)
        return True

    promql.walk(expr, visit)
    return found


def _problems(expression: str, exported: dict[str, set[str]]) -> list[str]:
    """What is wrong with ``expression``: a parse error, a metric nobody exports, a label it does not
    carry, a value its enum does not have."""
    try:
        parsed = promql.parse(expression)
    except ValueError as exc:
        return [f"does not parse: {exc}"]
    problems: list[str] = []
    for selector in _selectors(parsed):
        name = selector.name
        if name not in exported:
            problems.append(f"{name} is not exported by any component")
            continue
        for matcher in selector.matchers.matchers:
            if matcher.name not in exported[name] | TARGET_LABELS:
                problems.append(f"{name} has no label {matcher.name!r}")
            members = ENUM_LABELS.get(matcher.name)
            if members is not None and re.fullmatch(r"[\w|]+", matcher.value):
                unknown = set(matcher.value.split("|")) - members
                if unknown:
                    problems.append(f"{name}{{{matcher.name}}}: no such value {sorted(unknown)}")

    def grouping(node: Any) -> bool:
        if isinstance(node, promql.AggregateExpr) and node.modifier is not None:
            below = set().union(*(exported.get(s.name, set()) for s in _selectors(node.expr)))
            missing = set(node.modifier.labels) - below - TARGET_LABELS
            if missing:
                problems.append(f"{node.op} by {sorted(missing)}: no such label below it")
        return True

    promql.walk(parsed, grouping)
    return problems


def test_the_checks_catch_a_missing_metric_a_missing_label_and_a_wrong_value(exported: dict[str, set[str]]) -> None:
    assert _problems('sum(rate(selauto_decisions_total{outcome="execute"}[5m]))', exported) == []
    assert _problems("sum(rate(selauto_decision_total[5m]))", exported) == [
        "selauto_decision_total is not exported by any component"
    ]
    assert _problems('selauto_deferrals_total{cluster="retail"}', exported) == [
        "selauto_deferrals_total has no label 'cluster'"
    ]
    assert _problems('selauto_decisions_total{outcome=~"execute|exectue"}', exported) == [
        "selauto_decisions_total{outcome}: no such value ['exectue']"
    ]
    assert _problems("sum by (topic) (selauto_decisions_total)", exported) == [
        "sum by ['topic']: no such label below it"
    ]
    assert _problems("sum(rate(selauto_decisions_total[5m])", exported)[0].startswith("does not parse")


# --- the rendered monitoring resources ----------------------------------------------------------


@pytest.fixture(scope="module")
def render() -> Iterator[Any]:
    with helm_python.Chart.load(CHART_DIR) as chart:
        cache: dict[str, Rendered] = {}

        def _render(values: dict[str, Any]) -> Rendered:
            key = json.dumps(values, sort_keys=True)
            if key not in cache:
                cache[key] = Rendered(chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True))
            return cache[key]

        yield _render


def _dropped(given: Any, kept: Any, path: str = "") -> list[str]:
    """Paths in ``given`` that did not survive a round trip through a schema model (unknown fields)."""
    if isinstance(given, dict):
        if not isinstance(kept, dict):
            return [f"{path} (not an object)"]
        out = []
        for key, value in given.items():
            out += [f"{path}.{key}"] if key not in kept else _dropped(value, kept[key], f"{path}.{key}")
        return out
    if isinstance(given, list):
        if not isinstance(kept, list) or len(kept) != len(given):
            return [f"{path} (not the same list)"]
        return [p for i, (a, b) in enumerate(zip(given, kept, strict=True)) for p in _dropped(a, b, f"{path}[{i}]")]
    return []


def validate_custom_resource(doc: dict[str, Any]) -> None:
    """Validate a prometheus-operator resource against the model generated from its CRD schema;
    a misspelt field (which the API server would prune silently) fails as an unknown one."""
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    model = getattr(operator_crds, doc["kind"])
    kept = model.model_validate(doc).model_dump(mode="json", by_alias=True, exclude_unset=True)
    unknown = _dropped(doc, kept)
    assert not unknown, f"{doc['kind']}: fields not in the CRD schema: {unknown}"


def test_monitoring_is_off_by_default(render: Any) -> None:
    rendered = render(SCENARIOS["default"])
    assert not [d for d in rendered.docs if d["kind"] in MONITORING]
    assert not [d for d in rendered.of_kind("ConfigMap") if "grafana_dashboard" in d["metadata"]["labels"]]
    assert [s["metadata"]["name"] for s in rendered.of_kind("Service")] == ["selauto-selective-autonomy-console"]
    assert "metrics.serviceMonitor.enabled=true creates a ServiceMonitor" in rendered.notes


@pytest.mark.parametrize("scenario", ["production", "everything"])
def test_service_monitor_and_rules_validate_against_their_crd_schemas(render: Any, scenario: str) -> None:
    rendered = render(SCENARIOS[scenario])
    found = sorted(d["kind"] for d in rendered.docs if d["apiVersion"].startswith("monitoring.coreos.com"))
    assert found == ["PrometheusRule", "ServiceMonitor"]
    for doc in rendered.docs:
        if doc["kind"] in MONITORING:
            validate_custom_resource(doc)


def test_crd_validation_catches_misspelt_and_mistyped_fields(render: Any) -> None:
    monitor = render(ALL_ON).one("ServiceMonitor", "metrics")
    misspelt = json.loads(json.dumps(monitor))
    misspelt["spec"]["endpoints"][0]["intervall"] = "30s"
    with pytest.raises(AssertionError, match=r"\.spec\.endpoints\[0\]\.intervall"):
        validate_custom_resource(misspelt)
    mistyped = json.loads(json.dumps(monitor))
    mistyped["spec"]["endpoints"][0]["interval"] = 30
    with pytest.raises(ValidationError):
        validate_custom_resource(mistyped)
    rule = render(ALL_ON).one("PrometheusRule", "alerts")
    rule["spec"]["groups"][0]["rules"][0]["fore"] = "5m"
    with pytest.raises(AssertionError, match="fore"):
        validate_custom_resource(rule)


def test_service_monitor_scrapes_metrics_of_every_component_and_nothing_else(render: Any) -> None:
    rendered = render(_merge(SCENARIOS["production"], {"executor": {"enabled": True}}))
    monitor = rendered.one("ServiceMonitor", "metrics")
    spec = monitor["spec"]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert {e["path"] for e in spec["endpoints"]} == {"/metrics"}
    assert {e["interval"] for e in spec["endpoints"]} == {"15s"}
    endpoint_ports = {e["port"] for e in spec["endpoints"]}

    def selected(service: dict[str, Any]) -> bool:
        labels = service["metadata"]["labels"]
        if not spec["selector"]["matchLabels"].items() <= labels.items():
            return False
        return all(labels.get(e["key"]) in e["values"] for e in spec["selector"]["matchExpressions"])

    scraped: dict[str, int] = {}
    for service in filter(selected, rendered.of_kind("Service")):
        component = service["metadata"]["labels"]["app.kubernetes.io/component"]
        (port,) = [p for p in service["spec"]["ports"] if p["name"] in endpoint_ports]
        (container,) = rendered.one("Deployment", component)["spec"]["template"]["spec"]["containers"]
        (target,) = [p for p in container["ports"] if p["name"] == port["targetPort"]]
        scraped[component] = target["containerPort"]
    # The port scraped is the one each process serves /metrics on (the health port, the console's).
    assert scraped == {"worker": 6066, "learner": 6066, "console": 8080, "executor": 6067}
    assert set(monitor["spec"]["targetLabels"]) == {"app.kubernetes.io/instance", "app.kubernetes.io/component"}


def test_headless_metric_services_follow_the_components(render: Any) -> None:
    names = {s["metadata"]["name"] for s in render(_merge(ALL_ON, {"learner": {"enabled": False}})).of_kind("Service")}
    assert "selauto-selective-autonomy-learner" not in names
    assert {"selauto-selective-autonomy-worker", "selauto-selective-autonomy-executor"} <= names
    worker = render(ALL_ON).one("Service", "worker")
    assert worker["spec"]["clusterIP"] == "None"


def _rules(rendered: Rendered) -> dict[str, dict[str, Any]]:
    (group,) = rendered.one("PrometheusRule", "alerts")["spec"]["groups"]
    return {rule["alert"]: rule for rule in group["rules"]}


@pytest.mark.parametrize("scenario", ["production", "everything"])
def test_every_alert_parses_and_queries_only_exported_metrics(
    render: Any, exported: dict[str, set[str]], scenario: str
) -> None:
    rules = _rules(render(SCENARIOS[scenario]))
    assert set(rules) == {
        "SelautoConsumerLagHigh",
        "SelautoDeadLetters",
        "SelautoDeferralRateHigh",
        "SelautoStageDemoted",
    }
    problems = {name: _problems(rule["expr"], exported) for name, rule in rules.items()}
    assert not any(problems.values()), problems
    for name, rule in rules.items():
        # Each alert watches this release only.
        for selector in _selectors(promql.parse(rule["expr"])):
            matchers = {m.name: m.value for m in selector.matchers.matchers}
            assert matchers["namespace"] == NAMESPACE and matchers["app_kubernetes_io_instance"] == RELEASE, name
        assert rule["labels"]["severity"] == "warning"
        assert "{{ $labels." in rule["annotations"]["summary"], "Prometheus templating survives Helm"


def test_alert_thresholds_and_switches_come_from_the_values(render: Any) -> None:
    rules = _rules(render(SCENARIOS["production"]))
    assert rules["SelautoConsumerLagHigh"]["expr"].endswith("> 5000")
    assert rules["SelautoDeferralRateHigh"]["expr"].endswith("> 0.4")
    assert 'reason!~"copilot_stage|exploration|paused"' in rules["SelautoDeferralRateHigh"]["expr"]
    assert rules["SelautoDeadLetters"]["for"] == "5m"
    values = _merge(
        ALL_ON,
        {
            "metrics": {
                "prometheusRule": {
                    "deadLetters": {"enabled": False},
                    "deferralRate": {"excludeReasons": [], "window": "1h", "severity": "critical"},
                    "demotions": {"window": "2h"},
                }
            }
        },
    )
    rules = _rules(render(values))
    assert "SelautoDeadLetters" not in rules
    assert "reason" not in rules["SelautoDeferralRateHigh"]["expr"]
    assert "[1h]" in rules["SelautoDeferralRateHigh"]["expr"]
    assert rules["SelautoDeferralRateHigh"]["labels"]["severity"] == "critical"
    assert "[2h]" in rules["SelautoStageDemoted"]["expr"]


@pytest.mark.parametrize(
    "values",
    [
        {"metrics": {"serviceMonitor": {"interval": "often"}}},
        {"metrics": {"prometheusRule": {"deferralRate": {"threshold": 1.5}}}},
        {"metrics": {"prometheusRule": {"deferralRate": {"excludeReasons": ["copilot"]}}}},
        {"metrics": {"prometheusRule": {"consumerLag": {"for": "ten minutes"}}}},
        {"metrics": {"dashboard": {"enable": True}}},
    ],
    ids=lambda v: json.dumps(v, sort_keys=True),
)
def test_schema_rejects_invalid_monitoring_values(values: dict[str, Any]) -> None:
    with helm_python.Chart.load(CHART_DIR) as chart, pytest.raises(helm_python.HelmValuesError):
        chart.validate_schema(values)


# --- the Grafana dashboard ----------------------------------------------------------------------


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text())
    return data


def _grafana_roundtrip(data: dict[str, Any]) -> list[str]:
    grafana_plugins.register_default_plugins()  # typed panel options and Prometheus queries
    model = grafana_dashboard.Dashboard.from_json(data)
    return _dropped(data, json.loads(json.dumps(model, cls=grafana_encoder.JSONEncoder)))


def _substituted(expr: str) -> str:
    """The query as Grafana sends it: durations for the duration variables, a regex for the others."""
    expr = expr.replace("$__rate_interval", "5m").replace("$window", "24h")
    return re.sub(r"\$\{?(\w+)\}?", ".*", expr)


def test_dashboard_is_valid_grafana_dashboard_json() -> None:
    data = _dashboard()
    assert isinstance(data["schemaVersion"], int) and data["schemaVersion"] >= 36
    assert data["uid"] == "selective-autonomy" and data["title"]
    assert _grafana_roundtrip(data) == [], "every field is one Grafana's dashboard schema knows"
    variables = {v["name"]: v for v in data["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in data["panels"]]
    assert len(ids) == len(set(ids))
    for panel in data["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"] and {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        for target in panel["targets"]:
            used = set(re.findall(r"\$\{?(\w+)\}?", target["expr"]))
            assert used <= set(variables) | GRAFANA_BUILTINS, (panel["title"], used)


def test_dashboard_validation_catches_an_unknown_field() -> None:
    data = _dashboard()
    data["panels"][0]["targets"][0]["exp"] = data["panels"][0]["targets"][0].pop("expr")
    assert _grafana_roundtrip(data) == [".panels[0].targets[0].exp"]


def test_dashboard_shows_what_the_issue_asks_for_and_queries_only_exported_metrics(
    exported: dict[str, set[str]],
) -> None:
    data = _dashboard()
    queries = {panel["title"]: [_substituted(t["expr"]) for t in panel["targets"]] for panel in data["panels"]}
    problems = {title: [p for q in exprs for p in _problems(q, exported)] for title, exprs in queries.items()}
    assert not any(problems.values()), problems
    names = {title: {s.name for q in exprs for s in _selectors(promql.parse(q))} for title, exprs in queries.items()}
    wanted = {
        "selauto_decisions_total",  # automation rate
        "selauto_audits_weighted_total",  # realised precision from audits
        "selauto_console_deferrals_waiting",  # deferrals waiting
        "selauto_decision_latency_milliseconds_bucket",  # decide latency
        "selauto_consumer_lag",  # lag
    }
    assert wanted <= set().union(*names.values())
    variables = [v["query"]["query"] for v in data["templating"]["list"] if v["type"] == "query"]
    for query in variables:  # label_values(<selector>, <label>): the selector must be exported too
        selector = re.fullmatch(r"label_values\((.+), (\w+)\)", query)
        assert selector is not None, query
        assert _problems(_substituted(selector.group(1)), exported) == [], query
        assert selector.group(2) in exported["selauto_decisions_total"] | TARGET_LABELS


def test_dashboard_configmap_carries_the_dashboard_for_the_grafana_sidecar(render: Any) -> None:
    rendered = render(SCENARIOS["production"])
    configmap = rendered.one("ConfigMap", "dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"]["grafana_folder"] == "Support automation"
    assert json.loads(configmap["data"]["selective-autonomy.json"]) == _dashboard()
    assert len(yaml.safe_dump(configmap)) < 1_000_000, "a ConfigMap holds at most 1 MiB"


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = json.loads(json.dumps(base))
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
