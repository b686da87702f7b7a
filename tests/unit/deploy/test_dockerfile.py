"""The root Dockerfile against the Helm chart: same uid, same ports, an ENTRYPOINT the chart's
`command` replaces without doubling. Parsed as text (no Docker engine needed)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

helm_python = pytest.importorskip("helm_python")

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "Dockerfile"
CHART_DIR = ROOT / "deploy" / "helm" / "selective-autonomy"
# Every selauto component on: worker, learner, console, executor and the topic Job.
VALUES = {"executor": {"enabled": True}}


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def _selauto_containers() -> list[dict[str, Any]]:
    with helm_python.Chart.load(CHART_DIR) as chart:
        rendered = chart.render(VALUES, name="selauto", namespace="support", is_install=True)
    containers = []
    for path, text in rendered.items():
        if path.endswith(".txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc and doc["kind"] in {"Deployment", "Job"}:
                for container in doc["spec"]["template"]["spec"]["containers"]:
                    if "selective-autonomy/selective-autonomy" in container["image"]:
                        containers.append(container)
    assert {c["name"] for c in containers} == {"worker", "learner", "console", "executor", "topics"}
    return containers


def test_user_is_the_charts_run_as_user() -> None:
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    users = [rest for keyword, rest in _final_stage() if keyword == "USER"]
    assert users, "the image must not run as root"
    uid, _, gid = users[-1].partition(":")
    assert int(uid) == values["podSecurityContext"]["runAsUser"]
    assert not gid or int(gid) == values["podSecurityContext"]["runAsGroup"]
    assert re.search(rf"useradd\b.*--uid {uid}\b", DOCKERFILE.read_text()), "the uid needs a passwd entry"


def test_exposed_ports_are_the_charts_container_ports() -> None:
    exposed = {
        int(port.split("/")[0]) for keyword, rest in _final_stage() if keyword == "EXPOSE" for port in rest.split()
    }
    ports = {p["containerPort"] for c in _selauto_containers() for p in c.get("ports", [])}
    assert exposed == ports


def test_entrypoint_is_what_the_chart_replaces() -> None:
    entrypoints = [json.loads(rest) for keyword, rest in _final_stage() if keyword == "ENTRYPOINT"]
    assert entrypoints == [["selauto"]], "exec form, so that signals reach selauto"
    for container in _selauto_containers():
        # Kubernetes `command` replaces ENTRYPOINT and `args` replace CMD: `selauto <args>`, never doubled.
        assert container["command"] == entrypoints[0]
        assert container["args"] and container["args"][0] != "selauto"


def test_base_image_torch_and_install() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", text, flags=re.M)
    assert all(
        rest == "${PYTHON_IMAGE}" or rest.startswith("${PYTHON_IMAGE} ") for k, rest in _instructions() if k == "FROM"
    )
    torch = next(rest for keyword, rest in _instructions() if keyword == "RUN" and "torch" in rest)
    assert "--index-url https://download.pytorch.org/whl/cpu" in torch and '"torch==2.13.0"' in torch
    installs = [rest for keyword, rest in _instructions() if keyword == "RUN" and re.search(r"pip install \.", rest)]
    assert installs and not any("[dev]" in rest or "-e " in rest for rest in installs)
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert patterns[0] == "*", "an allow-list: nothing but the package and its build metadata"
    assert {"!pyproject.toml", "!README.md", "!selective_autonomy/"} <= set(patterns)
