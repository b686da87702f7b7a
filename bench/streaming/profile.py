"""Where a worker's CPU goes: py-spy samples of the running process, summed into a table by part
of the decide path and by function.

The raw stacks (``PREFIX.collapsed``, one ``frame;frame;... count`` line per stack) load into any
flame-graph viewer (speedscope, ``flamegraph.pl``, ``inferno``); the table (``PREFIX.md``) is what
the README quotes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PARTS: tuple[tuple[str, str], ...] = (
    # First match wins, from the leaf's callers upwards: order from specific to general.
    ("models (policy and critic)", r"DecisionEngine\.decide"),
    ("decode and validate ui.state", r"AvroCodec\.decode|DeadLetterRouter\.decode|decode_batch"),
    ("build and encode output records", r"AvroCodec\.encode|Decision\.output|encode_output"),
    ("session table", r"SessionState|AcknowledgedTable|ManagedUserDict|faust/tables/"),
    ("tracing", r"opentelemetry/trace|start_as_current_span|tracing\.py"),
    ("metrics", r"opentelemetry/sdk/metrics|agents/metrics\.py"),
    ("confluent-kafka producer", r"agent_producer\.py"),
    (
        "faust/aiokafka producing",
        r"aiokafka/producer|faust/transport/producer|faust/topics\.py|Topic\.send|ChangelogSingletonProducer",
    ),
    (
        "faust/aiokafka consuming",
        r"aiokafka/consumer|faust/transport/consumer|faust/transport/conductor|streams/app\.py|getmany",
    ),
    ("faust stream and agent", r"faust/streams\.py|faust/agents/"),
    ("decide agent (rest)", r"agents/decide\.py"),
    ("asyncio and sockets", r"asyncio/|selectors\.py|aiokafka/conn\.py|aiokafka/client\.py"),
)
"""Parts of the decide path and the frames that identify them."""

IDLE_LEAVES = (
    "select (selectors.py",
    "EpollSelector.select",
    "_worker (concurrent/futures/thread.py",
    "wait (threading.py",
    # A C function running on an executor thread, with no Python frame of its own: in the decide
    # worker that is librdkafka's flush() waiting for acknowledgements (AgentProducer.delivered);
    # the models' call shows its Python frames.
    "_WorkItem.run (concurrent/futures/thread.py:58)",
)
"""Leaf frames of a thread waiting, not working (py-spy's idle detection misses these)."""


def py_spy() -> str | None:
    """The py-spy executable next to this interpreter, or on the PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def start_recording(pid: int, duration_s: float, rate: int, out: Path) -> subprocess.Popen[bytes] | None:
    """Start sampling ``pid`` for ``duration_s`` into ``out`` (collapsed stacks); None without py-spy.

    ``--nonblocking`` reads the process without stopping it, so the profiled run keeps its pace.
    """
    exe = py_spy()
    if exe is None:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [exe, "record", "--pid", str(pid), "--duration", str(max(1, round(duration_s))), "--rate", str(rate)]
    command += ["--format", "raw", "--nonblocking", "--output", str(out)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def read_stacks(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def _clean(frame: str) -> str:
    """``func (path/to/module.py:12)`` without the site-packages prefix."""
    return re.sub(r"\(/[^)]*?(site-packages|lib/python3\.\d+|wt-[^/]+|selective-autonomy[^/]*)/", "(", frame)


def summarise(stacks: Iterable[tuple[list[str], int]], top: int = 25) -> dict[str, Any]:
    """Busy samples by part of the decide path and the functions with the most self and total time."""
    parts: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    total_time: Counter[str] = Counter()
    busy = idle = 0
    patterns = [(name, re.compile(pattern)) for name, pattern in PARTS]
    for frames, count in stacks:
        if frames and frames[-1].startswith(IDLE_LEAVES):
            idle += count
            continue
        busy += count
        frames = [_clean(f) for f in frames]
        for name, pattern in patterns:
            if any(pattern.search(f) for f in frames):
                parts[name] += count
                break
        else:
            parts["other"] += count
        self_time[frames[-1]] += count
        for frame in set(frames):
            total_time[frame] += count

    def share(counter: Counter[str], limit: int | None = None) -> list[dict[str, Any]]:
        return [{"name": k, "share": round(v / max(1, busy), 4)} for k, v in counter.most_common(limit)]

    return {
        "busy_samples": busy,
        "idle_samples": idle,
        "parts": share(parts),
        "self": share(self_time, top),
        "total": share(total_time, top),
    }


def tabulate(profile: dict[str, Any], folder: Path, rate: int, duration_s: float) -> dict[str, Any]:
    """Summarise the profiled run's stacks (``profile["stacks"]`` in ``folder``) into its table."""
    summary = summarise(read_stacks(folder / profile["stacks"]))
    phase = profile["run"]["phases"][0]
    partitions = profile["run"]["partitions"]
    context = (
        f"py-spy {rate} samples/s, {duration_s:g} s of the decide worker at max rate "
        f"({phase['achieved_eps']:.0f} ev/s under sampling, {phase.get('worker_cpu_ms_per_event')} ms of worker "
        f"CPU per event), {partitions} partitions; stacks in `{profile['stacks']}`."
    )
    write_table(summary, folder / profile["table"], context)
    return summary


def write_table(summary: dict[str, Any], path: Path, context: str) -> None:
    lines = [
        "# Decide worker profile at max rate",
        "",
        context,
        "",
        f"{summary['busy_samples']} busy samples (idle threads left out). Shares are of busy samples, all threads.",
        "",
        "| part of the decide path | share |",
        "|---|---|",
        *[f"| {row['name']} | {row['share']:.1%} |" for row in summary["parts"]],
        "",
        "| function (self) | share |",
        "|---|---|",
        *[f"| `{row['name']}` | {row['share']:.1%} |" for row in summary["self"]],
        "",
        "| function (self and callees) | share |",
        "|---|---|",
        *[f"| `{row['name']}` | {row['share']:.1%} |" for row in summary["total"]],
        "",
    ]
    path.write_text("\n".join(lines))
