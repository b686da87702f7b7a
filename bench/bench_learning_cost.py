"""Learning-loop cost as the feedback store grows: 10k, 100k and 1M feedback records on PostgreSQL.

The process is small but real: the first Helpdesk cases (``--cases``, default 300, in time order)
train an n-gram policy on their first half; the second half are the sessions. Each session is
replicated with fresh case ids, ``STRIDE`` later each time, and every replica runs through the real
decision engine and the simulated operator, as the live system would have handled it then:

* before ``selective_since`` (the first ~``--copilot-feedback`` answers) the process is in copilot:
  every step is a deferral and gets an answer;
* from then on its one cluster is selective, with the thresholds the learning plan certified on the
  copilot answers: the gate executes what passes (its proposal is recorded, and ``AUDIT_RATE`` of
  them are audited: feedback without deferral_id, with ``inclusion_probability``), defers the rest
  (stage selective) and keeps ``exploration_share`` of the sessions in the exploration holdout
  (``reason=exploration``).

So every read path of the loop is exercised on rows that look like the live ones (the state JSON,
the candidates). Per size, one fresh database is filled through ``record_proposals`` /
``record_feedbacks`` in chunks (insert time reported apart), analysed, and then measured, each
measurement in its own child process (so its peak RSS is its own, and a runaway one can be
stopped): (a) ``LearningLoop.run(retrain=True)`` with the default settings (window
``learning.window_feedback``), (b) ``run(retrain=False)``, the monitor only, and (c) the baseline a
run without the window would pay just to read: ``feedback_with_context(process_id=...)`` without
``newest`` plus ``critic_examples``. The service pointer is put back before every measurement, so
every repeat starts from the same state. EXPLAIN ANALYZE of the loop's two queries is kept per size.

Usage (from the repository root; needs the PostgreSQL server binaries, which ``make setup``
installs):

    .venv/bin/python -m bench.bench_learning_cost                       # 10k, 100k, 1M
    .venv/bin/python -m bench.bench_learning_cost --sizes 10000 100000  # quicker
    .venv/bin/python -m bench.bench_learning_cost --from-json bench/results/learning_cost.json  # redraw

Writes bench/results/learning_cost.json and learning_cost.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import heapq
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Select, event, or_, select, text

from bench.datasets import DATASETS_DIR
from selective_autonomy.agents.decisions import DecisionEngine
from selective_autonomy.agents.feedback import proposal_of
from selective_autonomy.config import LearningSettings
from selective_autonomy.inference.datasets import load_log
from selective_autonomy.inference.ngram import NGramPolicy
from selective_autonomy.inference.protocol import PolicyConfidenceCritic
from selective_autonomy.inference.registry import ModelRegistry, ProcessModels, ServicePointer
from selective_autonomy.learning.evidence import critic_examples
from selective_autonomy.learning.loop import LearningLoop
from selective_autonomy.learning.plan import plan_learning
from selective_autonomy.learning.plan_records import LearningInput
from selective_autonomy.schemas.event_parts import Action, DeferralReason, Stage, Verdict
from selective_autonomy.schemas.events import ActionExecuted, CopilotFeedback, OperatorDeferral
from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.schemas.sampling import SystematicSample
from selective_autonomy.simulator.offline import offline_copilot, with_context
from selective_autonomy.simulator.operator_model import OperatorConfig, OperatorModel
from selective_autonomy.store.models import ProposalRecord
from selective_autonomy.store.repository import FeedbackStore
from selective_autonomy.store.tables import feedback, proposals
from selective_autonomy.traces.format import Case
from selective_autonomy.traces.split import chronological_order

RESULTS = Path(__file__).parent / "results"
NAME = "learning_cost"
LOG = "helpdesk"
STRIDE = timedelta(hours=12)  # replica k starts k * STRIDE after the recorded sessions: ~1,600 answers a day
AUDIT_RATE = 0.04  # share of executed steps an operator reviews (the demo's)
AUDIT_DELAY = timedelta(minutes=5)  # an audit comes some time after the step ran
ANSWER_DELAY = timedelta(seconds=1)  # as offline_copilot: the answer right after the recorded step
DECIDE_BATCH = 512
MEASUREMENTS = ("full", "monitor", "baseline")
Row = tuple[ProposalRecord | None, CopilotFeedback]  # a deferral and its answer, or an audit


@dataclass(frozen=True)
class Process:
    """The process every database is filled from, and the pointers it is served with."""

    schema: ProcessSchema
    policy: NGramPolicy
    sessions: list[Case]  # the recorded sessions every replica repeats
    copilot: ServicePointer
    selective: ServicePointer  # certified on the copilot answers; selective_since is set per fill
    selective_since: datetime

    @property
    def process_id(self) -> str:
        return self.schema.process_id

    @property
    def cluster(self) -> str:
        return self.schema.business_clusters[0].id


# --- the process -------------------------------------------------------------------------------


def build_process(cases: int, copilot_feedback: int, seed: int, workdir: Path) -> Process:
    """Train the policy, certify thresholds on one copilot pass, and fix when the cluster went selective."""
    [log] = load_log(LOG, limit=cases, data_dir=DATASETS_DIR)
    ordered = chronological_order(log.cases)
    train, sessions = ordered[: len(ordered) // 2], ordered[len(ordered) // 2 :]
    schema = log.schema
    registry = ModelRegistry(workdir / "template")
    policy_path = save_policy(registry, schema, NGramPolicy(schema).fit(train), train)
    copilot = ServicePointer(policy=policy_path, default_stage=Stage.copilot)
    registry.publish(schema.process_id, copilot)
    models = registry.load(schema.process_id)
    policy = models.policy
    assert isinstance(policy, NGramPolicy)
    pairs = list(offline_copilot(models, sessions, operator(seed)))
    # The thresholds the selective stage runs with: the plan's own certificate on copilot answers
    # (the policy's confidence as critic: it is what the gate scores with before a critic is trained).
    inputs = LearningInput(schema=schema, pointer=copilot, models=models, examples=critic_examples(with_context(pairs)))
    certified = plan_learning(inputs, LearningSettings(critic="confidence")).pointer
    cluster = schema.business_clusters[0].id
    if certified.stage(cluster) is not Stage.selective:
        raise SystemExit(f"the copilot answers certified nothing for {cluster}: {certified.thresholds}")
    since = nth_step_time(sessions, copilot_feedback)
    selective = certified.model_copy(
        update={
            "stages": {cluster: Stage.selective},
            "exploration_share": LearningSettings().exploration_share,
            "selective_since": {cluster: since},
            "revision": 0,
        }
    )
    return Process(schema, policy, sessions, copilot, selective, since)


def save_policy(registry: ModelRegistry, schema: ProcessSchema, policy: NGramPolicy, train: Sequence[Case]) -> str:
    registry.save_schema(schema)
    meta = policy.train_meta(train)
    policy.save(registry.process_dir(schema.process_id) / "policy" / meta.version, meta)
    return f"policy/{meta.version}"


def operator(seed: int) -> OperatorModel:
    return OperatorModel(OperatorConfig(seed=seed))


def nth_step_time(sessions: Sequence[Case], n: int) -> datetime:
    """The time by which ``n`` steps of the replicas have been taken: in copilot, ``n`` answers.

    Replicas overlap (each spans months, one starts every stride), so they are added until the next
    one starts after the n-th step found so far."""
    first = min(step.timestamp for case in sessions for step in case.steps)
    times: list[datetime] = []
    k = 0
    while len(times) < n or first + k * STRIDE <= sorted(times)[n - 1]:
        times += [step.timestamp + k * STRIDE for case in sessions for step in case.steps]
        k += 1
    return sorted(times)[n - 1]


def replica(case: Case, k: int) -> Case:
    """The recorded session as it would recur ``k`` strides later, under a new case id."""
    shift = k * STRIDE
    steps = [
        step.model_copy(
            update={
                "timestamp": step.timestamp + shift,
                "state": step.state.model_copy(
                    update={"case_started_at": step.state.case_started_at + shift} if step.state.case_started_at else {}
                ),
            }
        )
        for step in case.steps
    ]
    moved = {"case_id": f"{case.case_id}-r{k}", "started_at": case.started_at + shift, "steps": steps}
    return case.model_copy(update=moved)


# --- the rows ----------------------------------------------------------------------------------


class RowMaker:
    """Every step of a replica through the decision engine of the stage in force at its time."""

    def __init__(self, process: Process, seed: int) -> None:
        self.process = process
        self.operator = operator(seed)
        self.audit_sample = SystematicSample(AUDIT_RATE)
        self.engines = {
            stage: DecisionEngine(
                {process.process_id: ProcessModels(process.schema, process.policy, PolicyConfidenceCritic(), pointer)}
            )
            for stage, pointer in ((Stage.copilot, process.copilot), (Stage.selective, process.selective))
        }

    def rows(self, k: int) -> list[Row]:
        cases = [replica(case, k) for case in self.process.sessions]
        steps = [(case, i, case.state_event(i)) for case in cases for i in range(len(case.steps))]
        out: list[Row] = []
        for start in range(0, len(steps), DECIDE_BATCH):
            chunk = steps[start : start + DECIDE_BATCH]
            # The stage in force when the state arrived: the pointer changed at selective_since.
            for stage in (Stage.copilot, Stage.selective):
                mine = [s for s in chunk if (s[2].timestamp < self.process.selective_since) == (stage is Stage.copilot)]
                if not mine:
                    continue
                decisions = self.engines[stage].decide([e for _, _, e in mine], {})
                for decision, (case, i, state) in zip(decisions, mine, strict=True):
                    row = self._row(decision.output(), case, i, state.timestamp)
                    if row is not None:
                        out.append(row)
        return out

    def _row(self, record: object, case: Case, i: int, decided_at: datetime) -> Row | None:
        step = case.steps[i]
        if isinstance(record, OperatorDeferral):
            # On the log's clock, like the answer: the engine stamps a deferral with the wall clock.
            record = record.model_copy(update={"deferred_at": decided_at})
            answer = self.operator.answer(record.suggestion, step.action, key=f"{case.case_id}/{i}")
            answered = self.operator.feedback(record, answer, latency_ms=0).model_copy(
                update={"feedback_id": f"fb-{record.deferral_id}", "given_at": step.timestamp + ANSWER_DELAY}
            )
            return proposal_of(record), answered
        if isinstance(record, ActionExecuted):
            # As the live path: only deferrals are recorded as proposals; an executed step leaves
            # a row only when it is audited (the audit needs no state: the monitor reads its verdict).
            if not self.audit_sample.picks(record.process_id, record.action_id):
                return None
            return None, audit(record, step.action, self.operator, step.timestamp + AUDIT_DELAY)
        raise SystemExit(f"the engine produced {type(record).__name__}: the bench needs copilot or selective")


def audit(record: ActionExecuted, recorded: Action, model: OperatorModel, at: datetime) -> CopilotFeedback:
    """An operator's review of a step that ran, as the session driver writes it."""
    correct = model.accepts(record.action, recorded)
    return CopilotFeedback(
        feedback_id=f"fb-audit-{record.action_id}",
        deferral_id=None,
        session_id=record.session_id,
        process_id=record.process_id,
        business_cluster=record.business_cluster,
        state_version=record.state_version,
        suggestion=record.action,
        suggestion_action_id=record.action_id,
        verdict=Verdict.accepted if correct else Verdict.corrected,
        operator_action=None if correct else recorded,
        operator_id=model.config.operator_id,
        latency_ms=0,
        policy_probability=record.policy_probability,
        critic_score=record.critic_score,
        policy_version=record.policy_version,
        critic_version=record.critic_version,
        inclusion_probability=AUDIT_RATE,
        given_at=at,
    )


def rows_in_time_order(maker: RowMaker) -> Iterator[Row]:
    """Every replica's rows merged by feedback time: the store of a process that has run since its
    first session holds exactly a prefix of this stream. Replica ``k`` is generated once the stream
    reaches its start (no row of it can come earlier), so only the replicas still open are held."""
    first = min(case.started_at for case in maker.process.sessions)
    pending: list[tuple[datetime, int, int, Row]] = []
    k = 0
    while True:
        starts = first + k * STRIDE
        while pending and pending[0][0] < starts:
            yield heapq.heappop(pending)[3]
        for j, row in enumerate(maker.rows(k)):
            heapq.heappush(pending, (row[1].given_at, k, j, row))
        k += 1


def rows_up_to(maker: RowMaker, feedback: int) -> Iterator[Row]:
    """The oldest ``feedback`` answers (with their proposals) of the process."""
    return itertools.islice(rows_in_time_order(maker), feedback)


def fill(store: FeedbackStore, maker: RowMaker, feedback: int, chunk: int) -> dict[str, Any]:
    """Write the rows in chunks of ``chunk`` answers (with their proposals); time the inserts alone.

    The cyclic garbage collector is off meanwhile: the rows are plain pydantic objects (no cycles),
    and with the replicas still open held in memory its passes took 40% of the fill and would have
    been charged to the inserts."""
    gc.disable()
    try:
        return _fill(store, maker, feedback, chunk)
    finally:
        gc.enable()
        gc.collect()


def _fill(store: FeedbackStore, maker: RowMaker, feedback: int, chunk: int) -> dict[str, Any]:
    started = time.perf_counter()
    insert_s = 0.0
    proposals: list[ProposalRecord] = []
    answers: list[CopilotFeedback] = []
    totals = Counter[str]()

    def flush() -> None:
        nonlocal insert_s
        begun = time.perf_counter()
        store.record_proposals(proposals)
        store.record_feedbacks(answers)
        insert_s += time.perf_counter() - begun
        totals.update(proposals=len(proposals), feedback=len(answers))
        proposals.clear()
        answers.clear()

    kinds = Counter[str]()
    for proposal, item in rows_up_to(maker, feedback):
        if proposal is not None:
            proposals.append(proposal)
            kinds[f"deferral, stage {proposal.stage.value}, {_value(proposal.reason)}"] += 1
        else:
            kinds["audit"] += 1
        answers.append(item)
        if len(answers) >= chunk:
            flush()
    flush()
    total_s = time.perf_counter() - started
    return {
        "feedback": totals["feedback"],
        "proposals": totals["proposals"],
        "feedback_by_kind": dict(sorted(kinds.items())),
        "insert_s": round(insert_s, 2),
        "insert_rows_per_s": round((totals["feedback"] + totals["proposals"]) / insert_s),
        "generate_s": round(total_s - insert_s, 2),
        "chunk_feedback": chunk,
    }


def _value(reason: DeferralReason | None) -> str:
    return "" if reason is None else reason.value


# --- PostgreSQL --------------------------------------------------------------------------------


def analyse(engine: Engine) -> dict[str, Any]:
    """VACUUM ANALYZE after the bulk load: what autovacuum does to a live store after a while, so the
    planner sees the table sizes a long-running deployment has."""
    begun = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))
        sizes = {
            table: connection.execute(text(f"SELECT pg_total_relation_size('{table}')")).scalar_one()
            for table in ("feedback", "proposals")
        }
        database = connection.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
    return {
        "vacuum_analyze_s": round(time.perf_counter() - begun, 2),
        "table_bytes": sizes,
        "database_bytes": database,
    }


def captured(engine: Engine, call: Callable[[], object]) -> list[tuple[str, Any]]:
    """The SQL statements (and parameters) ``call`` sends through ``engine``."""
    statements: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        call()
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    return statements


def judged_before_0003(process_id: str, since: datetime) -> Select[Any]:
    """``judged_unattended``'s query before store migration 0003: one outer join of feedback and
    proposals, filtered after it. Explained next to the current one, to show what the fix changed."""
    audit = feedback.c.deferral_id.is_(None) & feedback.c.suggestion_action_id.is_not(None)
    return (
        select(
            feedback.c.feedback_id,
            feedback.c.verdict,
            feedback.c.given_at,
            feedback.c.inclusion_probability,
            proposals.c.inclusion_probability.label("exploration_probability"),
            audit.label("audit"),
        )
        .select_from(feedback.outerjoin(proposals, feedback.c.deferral_id == proposals.c.proposal_id))
        .where(feedback.c.process_id == process_id, feedback.c.given_at >= since)
        .where(or_(audit, proposals.c.reason == DeferralReason.exploration.value))
        .order_by(feedback.c.given_at, feedback.c.feedback_id)
    )


def explain(store: FeedbackStore, process: Process, window: int) -> dict[str, dict[str, Any]]:
    """EXPLAIN (ANALYZE, BUFFERS) of the queries a run sends (the window, the monitor's judged
    steps) and of the judged steps' query as it was before the fix."""
    pid, since = process.process_id, process.selective_since
    calls: dict[str, Callable[[], object]] = {
        "window": lambda: store.feedback_with_context(process_id=pid, newest=window),
        "judged_unattended": lambda: store.judged_unattended(pid, since),
    }
    statements = {name: captured(store.engine, call)[0] for name, call in calls.items()}
    with store.engine.connect() as connection:
        old = judged_before_0003(pid, since).compile(connection)
        statements["judged_unattended_before_0003"] = (str(old), old.params)
        plans: dict[str, dict[str, Any]] = {}
        for name, (statement, parameters) in statements.items():
            lines = [
                row[0] for row in connection.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters)
            ]
            timing = [line for line in lines if line.startswith("Execution Time:")]
            plans[name] = {"execution_ms": float(timing[0].split()[2]) if timing else None, "plan": lines}
    return plans


# --- one measurement, in a child process -------------------------------------------------------


def memory_mb(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process, from /proc. Not ``ru_maxrss``: Linux
    carries that over from the parent at fork, so a child would report the bench's own peak."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return 0.0


def measure(url: str, models_dir: Path, process_id: str, kind: str) -> dict[str, Any]:
    """One measurement; the child process prints it as JSON."""
    store = FeedbackStore.open(url, migrate=False)
    parts: dict[str, Any] = {}
    before = memory_mb("VmRSS")
    try:
        if kind == "baseline":
            begun = time.perf_counter()
            rows = store.feedback_with_context(process_id=process_id)
            read_s = time.perf_counter() - begun
            examples = critic_examples(rows)
            seconds = time.perf_counter() - begun
            parts = {"read": {"s": read_s, "rows": len(rows)}, "critic_examples": {"s": seconds - read_s}}
            result: dict[str, Any] = {"rows_read": len(rows), "critic_examples": len(examples)}
        else:
            loop = LearningLoop(ModelRegistry(models_dir), store)
            begun = time.perf_counter()
            report = loop.run(process_id, retrain=kind == "full")
            seconds = time.perf_counter() - begun
            # The loop's own step times (learning/step_times.py): store reads, update, choice, certification.
            parts = {name: dataclasses.asdict(step) for name, step in loop.times.steps.items()}
            judged = parts.get("judged_unattended", {}).get("rows", 0)
            result = {
                "rows_read": report.feedback + judged,
                "feedback_read": report.feedback,
                "judged_read": judged,
                "critic_examples": report.critic_examples,
                "critic": report.critic,
                "stage_changes": [f"{c.from_stage.value}->{c.to_stage.value}" for c in report.stage_changes],
                "notes": report.notes,
            }
    finally:
        store.close()
    peak = memory_mb("VmHWM")
    rounded = {name: {k: round(v, 3) if isinstance(v, float) else v for k, v in p.items()} for name, p in parts.items()}
    memory = {"rss_before_mb": round(before), "peak_rss_mb": round(peak)}
    return {"s": round(seconds, 3), **result, "parts": rounded, **memory}


def run_child(args: Sequence[str], limit_s: float, limit_rss_mb: float) -> dict[str, Any]:
    """Run one measurement in a child process, stopped past ``limit_s`` or ``limit_rss_mb``."""
    import psutil

    command = [sys.executable, "-m", "bench.bench_learning_cost", "measure", *args]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        # Files, not pipes: a child that writes much to stderr never blocks on a full pipe.
        child = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        watched = psutil.Process(child.pid)
        begun, peak, why = time.monotonic(), 0.0, ""
        while child.poll() is None:
            try:
                peak = max(peak, watched.memory_info().rss / 2**20)
            except psutil.NoSuchProcess:
                break
            if peak > limit_rss_mb:
                why = f"stopped: RSS passed {limit_rss_mb:.0f} MB after {time.monotonic() - begun:.0f} s"
            elif time.monotonic() - begun > limit_s:
                why = f"stopped: still running after {limit_s:.0f} s (RSS {peak:.0f} MB)"
            if why:
                child.kill()
                child.wait()
                return {"finished": False, "why": why, "peak_rss_mb": round(peak), "s": None}
            time.sleep(0.1)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if child.returncode != 0:
        return {"finished": False, "why": f"exited {child.returncode}: {stderr.strip()[-2000:]}", "s": None}
    return {"finished": True, **json.loads(stdout.strip().splitlines()[-1])}


# --- per size ----------------------------------------------------------------------------------


def registry_for(process: Process, directory: Path, template: Path) -> ModelRegistry:
    shutil.copytree(template, directory)
    registry = ModelRegistry(directory)
    registry.publish(process.process_id, process.selective)
    return registry


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    done = [r for r in runs if r.get("finished")]
    if not done:
        return {"finished": False, "why": runs[-1].get("why", ""), "peak_rss_mb": runs[-1].get("peak_rss_mb")}
    seconds = [r["s"] for r in done]
    parts = {name for r in done for name in r["parts"]}
    return {
        "finished": len(done) == len(runs),
        "min_s": min(seconds),
        "median_s": statistics.median(seconds),
        "max_s": max(seconds),
        "parts_median_s": {
            name: round(statistics.median(r["parts"].get(name, {}).get("s", 0.0) for r in done), 3)
            for name in sorted(parts)
        },
        "rows_read": done[-1]["rows_read"],
        "peak_rss_mb": max(r["peak_rss_mb"] for r in done),
    }


def measure_size(
    process: Process, size: int, server: Any, workdir: Path, template: Path, args: argparse.Namespace
) -> dict[str, Any]:
    with server.database() as url:
        with FeedbackStore.open(url) as store:
            loaded = fill(store, RowMaker(process, args.seed), size, args.chunk)
            rate = f"{loaded['insert_s']} s ({loaded['insert_rows_per_s']} rows/s)"
            print(f"{size:>9,} feedback: inserted in {rate}", flush=True)
            loaded |= analyse(store.engine)
            plans = explain(store, process, LearningSettings().window_feedback)
        registry = registry_for(process, workdir / f"models-{size}", template)
        runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in MEASUREMENTS}
        for repeat in range(args.repeats):
            for kind in MEASUREMENTS:
                if runs[kind] and not runs[kind][-1].get("finished"):
                    continue  # what did not finish once would not finish again
                registry.publish(process.process_id, process.selective)  # every run starts from the same pointer
                load = os.getloadavg()
                child_args = ["--url", url, "--models", str(registry.models_dir), "--process", process.process_id]
                run = run_child([*child_args, "--kind", kind], args.limit_s, args.limit_rss_gb * 1024)
                run |= {"repeat": repeat, "loadavg_before": [round(x, 2) for x in load]}
                runs[kind].append(run)
                said = f"{run.get('s')} s, peak {run.get('peak_rss_mb')} MB {run.get('why', '')}"
                print(f"{size:>9,} {kind:8} #{repeat}: {said}", flush=True)
    return {"size": size, "load": loaded, "explain": plans, "runs": runs, **{k: summary(v) for k, v in runs.items()}}


def ratios(sizes: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Each size's median time over the smallest size's, per measurement (and for the inserts)."""
    first = sizes[0]
    out: dict[str, dict[str, float | None]] = {}
    for entry in sizes:
        row: dict[str, float | None] = {"insert": round(entry["load"]["insert_s"] / first["load"]["insert_s"], 2)}
        for kind in MEASUREMENTS:
            a, b = entry[kind].get("median_s"), first[kind].get("median_s")
            row[kind] = round(a / b, 2) if a is not None and b else None
        out[str(entry["size"])] = row
    return out


# --- report ------------------------------------------------------------------------------------


def plot(payload: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = payload["sizes"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    labels = {
        "full": "full run (retrain=True)",
        "monitor": "monitor-only run",
        "baseline": "baseline: read every record + critic_examples",
    }
    for kind, label in labels.items():
        done = [s for s in sizes if s[kind].get("median_s") is not None]
        xs = [s["size"] for s in done]
        medians = [s[kind]["median_s"] for s in done]
        low = [m - s[kind]["min_s"] for m, s in zip(medians, done, strict=True)]
        high = [s[kind]["max_s"] - m for m, s in zip(medians, done, strict=True)]
        left.errorbar(xs, medians, yerr=[low, high], marker="o", capsize=3, label=label)
        right.plot(xs, [s[kind]["peak_rss_mb"] for s in done], marker="o", label=label)
        for s in sizes:
            if s[kind].get("median_s") is None:
                left.annotate("did not finish", (s["size"], max(medians or [1.0])), fontsize=8, ha="right")
    left.plot([s["size"] for s in sizes], [s["load"]["insert_s"] for s in sizes], "k--", marker="x", label="insert")
    window = payload["settings"]["window_feedback"]
    for axis in (left, right):
        axis.set_xscale("log")
        axis.axvline(window, color="grey", linestyle=":", linewidth=1)
        axis.set_xlabel("feedback records in the store (PostgreSQL)")
        axis.grid(alpha=0.3)
    left.set_yscale("log")
    left.set_ylabel("seconds (median, min-max over repeats)")
    left.set_title(f"Learning-loop run time (window {window:,})")
    right.set_ylabel("peak RSS of the run, MB")
    right.set_title("Memory")
    left.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def table(payload: dict[str, Any]) -> str:
    def cell(entry: dict[str, Any]) -> str:
        if entry.get("median_s") is None:
            return f"did not finish ({entry.get('why', '')})"
        return f"{entry['median_s']:.2f} ({entry['min_s']:.2f}-{entry['max_s']:.2f})"

    lines = [
        "| feedback | insert s | full run s | monitor run s | baseline read s | rows read full / monitor / baseline "
        "| peak RSS MB full / monitor / baseline | ratio to first: full / monitor / baseline |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for entry in payload["sizes"]:
        ratio = payload["ratios"][str(entry["size"])]
        rows = " / ".join(f"{entry[k]['rows_read']:,}" if entry[k].get("rows_read") else "-" for k in MEASUREMENTS)
        rss = " / ".join(str(entry[k].get("peak_rss_mb", "-")) for k in MEASUREMENTS)
        lines.append(
            f"| {entry['size']:,} | {entry['load']['insert_s']:.0f} | {cell(entry['full'])} | {cell(entry['monitor'])} "
            f"| {cell(entry['baseline'])} | {rows} | {rss} | "
            + " / ".join("-" if ratio[k] is None else f"{ratio[k]:.2f}" for k in MEASUREMENTS)
            + " |"
        )
    return "\n".join(lines)


def machine(server_version: str) -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "postgres": server_version,
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", type=int, default=300, help="first Helpdesk cases: half train, half are sessions")
    parser.add_argument("--copilot-feedback", type=int, default=5_000, help="answers before the cluster went selective")
    parser.add_argument("--chunk", type=int, default=5_000, help="answers per record_proposals/record_feedbacks call")
    parser.add_argument("--limit-s", type=float, default=600.0, help="a measurement running longer is stopped")
    parser.add_argument("--limit-rss-gb", type=float, default=8.0, help="a measurement using more memory is stopped")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--from-json", type=Path, help="redraw the plot and print the table from a results file")
    args = parser.parse_args()
    if args.from_json:
        payload = json.loads(args.from_json.read_text())
        plot(payload, args.out / f"{NAME}.png")
        print(table(payload))
        return

    from tests.integration.postgres import PostgresServer

    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="selauto-bench-cost-"))
    try:
        process = build_process(args.cases, args.copilot_feedback, args.seed, workdir)
        with PostgresServer.running() as server:
            sizes = [measure_size(process, size, server, workdir, workdir / "template", args) for size in args.sizes]
            version = server.version
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    payload = {
        "benchmark": NAME,
        "machine": machine(version),
        "settings": {
            "sizes": args.sizes,
            "repeats": args.repeats,
            "window_feedback": LearningSettings().window_feedback,
            "log": LOG,
            "cases": args.cases,
            "sessions_replicated": len(process.sessions),
            "steps_per_replica": sum(len(c.steps) for c in process.sessions),
            "stride_h": STRIDE.total_seconds() / 3600,
            "copilot_feedback": args.copilot_feedback,
            "selective_since": process.selective_since.isoformat(),
            "thresholds": process.selective.thresholds.values,
            "exploration_share": process.selective.exploration_share,
            "audit_rate": AUDIT_RATE,
            "chunk_feedback": args.chunk,
            "limit_s": args.limit_s,
            "limit_rss_gb": args.limit_rss_gb,
            "seed": args.seed,
        },
        "sizes": sizes,
        "ratios": ratios(sizes),
        "wall_s": round(time.monotonic() - started, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{NAME}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    plot(payload, args.out / f"{NAME}.png")
    print(table(payload))


def measure_main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench_learning_cost measure")
    parser.add_argument("--url", required=True)
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--process", required=True)
    parser.add_argument("--kind", choices=MEASUREMENTS, required=True)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.url, args.models, args.process, args.kind)))


if __name__ == "__main__":
    if sys.argv[1:2] == ["measure"]:
        measure_main(sys.argv[2:])
    else:
        main()
