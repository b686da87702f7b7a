"""The chart's scenarios (its ci/values-*.yaml files and an inline "everything on") and a render's
manifests, for the chart's and its monitoring's tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

CHART_DIR = Path(__file__).resolve().parents[3] / "deploy" / "helm" / "selective-autonomy"
RELEASE = "selauto"
NAMESPACE = "support"

# Chart-managed credentials, the executor, a NodePort console and the monitoring resources: templates the
# ci/ files leave off.
EVERYTHING: dict[str, Any] = {
    "kafka": {
        "securityProtocol": "SASL_PLAINTEXT",
        "saslMechanism": "PLAIN",
        "sasl": {"username": "selauto", "password": "inline-password"},
        "extra": {"linger.ms": 5, "enable.idempotence": True},
    },
    "store": {"url": "postgresql+psycopg://selauto:pw@db:5432/selauto"},
    "schemaRegistry": {
        "url": "https://registry-0.kafka.svc:8081,https://registry-1.kafka.svc:8081",
        "compatibility": "FULL_TRANSITIVE",
        "timeoutS": 2.5,
        "maxRetries": 4,
        "basicAuth": {"username": "selauto-registry", "password": "registry-inline-password"},
        "tls": {
            "caSecret": "registry-ca",
            "caSecretKey": "bundle.pem",
            "clientSecret": "registry-client",
            "clientSecretKeyPasswordKey": "key-password",
        },
    },
    "console": {
        "operators": {"alice": "inline-token", "bob": "another-inline-token"},
        "secretKey": "inline-secret-key",
        "service": {"type": "NodePort"},
    },
    "executor": {
        "enabled": True,
        "extraEnv": [
            {"name": "PLATFORM_URL", "value": "http://platform"},
            {"name": "SELAUTO_EXECUTOR__HTTP__BASE_URL", "value": "http://platform/api"},
        ],
    },
    "inference": {"url": "http://inference.example:8000/v1", "model": "policy"},
    "otel": {"endpoint": "http://otel-collector:4318/"},
    "settings": {"learning": {"target_precision": 0.95}, "console": {"operator_processes": {"alice": ["helpdesk"]}}},
    "worker": {
        "data": {"existingClaim": "selauto-data"},
        "pdb": {"minAvailable": "50%"},
        "extraEnv": [{"name": "SELAUTO_WORKER__BATCH_SIZE", "value": "32"}],
    },
    "metrics": {
        "serviceMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "dashboard": {"enabled": True},
    },
}


def load_values(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


SCENARIOS: dict[str, dict[str, Any]] = {
    "default": load_values(CHART_DIR / "ci" / "values-default.yaml"),
    "production": load_values(CHART_DIR / "ci" / "values-production.yaml"),
    "lora": load_values(CHART_DIR / "ci" / "values-lora.yaml"),
    "everything": EVERYTHING,
}


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
