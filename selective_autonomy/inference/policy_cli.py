"""``selauto train policy`` and ``selauto eval policy``: train a policy artefact, or compare policies on a log.

The command functions are plain typed functions so the main CLI can mount them under its own
``train`` and ``eval`` groups; :data:`policy_app` holds both (as ``train`` and ``eval``) for use on
its own and in tests. Torch is imported only when a command runs, so ``selauto --help`` stays fast.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from tqdm import tqdm

from selective_autonomy.config import load_settings
from selective_autonomy.errors import SelautoError
from selective_autonomy.inference.datasets import (
    DEFAULT_FRACTIONS,
    Examples,
    ProcessCases,
    ProcessSplit,
    case_examples,
    load_log,
    log_label,
    split_processes,
)
from selective_autonomy.inference.evaluation import (
    EvaluationReport,
    PolicyReport,
    ProcessRouter,
    evaluate_policy,
    median_ms,
    plot_report,
)
from selective_autonomy.inference.protocol import Policy
from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.traces.format import Case, read_cases

if TYPE_CHECKING:
    from selective_autonomy.inference.embedded_policy import EmbeddedConfig
    from selective_autonomy.inference.llm.harness import LLMHarnessConfig

policy_app = typer.Typer(
    help="Train next-action policies and compare them with the n-gram baseline on chronological splits.",
    no_args_is_help=True,
)

LATENCY_BATCH = 256


class PolicyKind(StrEnum):
    ngram = "ngram"
    embedded = "embedded"
    llm = "llm"


LogOption = Annotated[
    str | None,
    typer.Option("--log", help="helpdesk, bpi2012w, sgd-dev (the shared data) or the path of an XES/CSV event log."),
]
MappingOption = Annotated[
    str | None,
    typer.Option("--mapping", "-m", help="Event-log mapping YAML or built-in name; default: the log's own name."),
]
LimitOption = Annotated[
    int | None, typer.Option("--limit", min=1, help="Use only the first N cases (SGD: dialogues) of --log.")
]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of the embedded policy's initialisation and batches.")]
EpochsOption = Annotated[int, typer.Option("--max-epochs", min=1, help="Epoch limit of the embedded policy.")]
LLMBaseOption = Annotated[
    Path | None,
    typer.Option(
        "--base",
        help="LLM: local pretrained model directory (HF checkpoint or one .gguf) to LoRA-tune; "
        "default: a small model from scratch. Never downloaded.",
        exists=True,
        file_okay=False,
    ),
]
LLMSecondsOption = Annotated[
    float, typer.Option("--llm-train-seconds", min=1, help="LLM: training time limit (per process).")
]


def _fail(error: Exception) -> typer.Exit:
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(code=1)


def _embedded_config(seed: int, max_epochs: int) -> EmbeddedConfig:
    from selective_autonomy.inference.embedded_policy import EmbeddedConfig
    from selective_autonomy.inference.training import TrainConfig

    return EmbeddedConfig(train=TrainConfig(seed=seed, max_epochs=max_epochs))


def train_policy(
    kind: PolicyKind,
    schema: ProcessSchema,
    cases: list[Case],
    out: Path,
    seed: int = 0,
    max_epochs: int = 40,
    llm: LLMHarnessConfig | None = None,
) -> Path:
    """Train one policy on ``cases`` and save it as ``out/<version>``; returns that directory.

    :param llm: training settings of the LLM policy (``kind`` llm); default ``LLMHarnessConfig()``.
    """
    if kind is PolicyKind.ngram:
        from selective_autonomy.inference.ngram import NGramPolicy

        ngram = NGramPolicy(schema).fit(cases)
        meta = ngram.train_meta(cases)
        ngram.save(out / meta.version, meta)
        return out / meta.version
    if kind is PolicyKind.llm:
        return _train_llm(schema, cases, out, llm)
    from selective_autonomy.inference.embedded_policy import EmbeddedPolicy

    policy = EmbeddedPolicy.train(schema, cases, _embedded_config(seed, max_epochs))
    loss = policy.report.best_val_loss if policy.report else math.inf
    meta = policy.train_meta(cases, {"val_loss": loss} if math.isfinite(loss) else {})
    policy.save(out / meta.version, meta)
    return out / meta.version


def _train_llm(schema: ProcessSchema, cases: list[Case], out: Path, config: LLMHarnessConfig | None) -> Path:
    import shutil

    from selective_autonomy.inference.llm.harness import LLMHarnessConfig, train_llm_policies
    from selective_autonomy.traces.split import chronological_order

    config = config or LLMHarnessConfig()
    staging = out / ".training"
    trained = train_llm_policies([(schema, chronological_order(cases))], staging, config)[schema.process_id]
    target = out / trained.version
    if target.exists():
        shutil.rmtree(target)
    trained.directory.rename(target)
    shutil.rmtree(staging, ignore_errors=True)
    return target


def _pick_process(processes: list[ProcessCases], process: str | None) -> ProcessCases:
    if process is not None:
        for candidate in processes:
            if candidate.schema.process_id == process:
                return candidate
        raise SelautoError(f"no process {process!r}; the input has {[p.schema.process_id for p in processes]}")
    if len(processes) != 1:
        raise SelautoError(
            f"the input holds several processes, choose one with --process: {[p.schema.process_id for p in processes]}"
        )
    return processes[0]


def train_policy_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the artefact into, as <out>/<version>.")],
    cases: Annotated[
        Path | None, typer.Option("--cases", help="JSONL cases (from selauto import).", exists=True, dir_okay=False)
    ] = None,
    schema: Annotated[
        Path | None,
        typer.Option("--schema", help="Process schema YAML of the cases (with --cases).", exists=True, dir_okay=False),
    ] = None,
    log: LogOption = None,
    mapping: MappingOption = None,
    process: Annotated[
        str | None, typer.Option("--process", help="Process to train when --log holds several (e.g. sgd.Banks_2).")
    ] = None,
    kind: Annotated[
        PolicyKind, typer.Option("--kind", help="embedded (default), the ngram baseline, or llm (served by vLLM).")
    ] = PolicyKind.embedded,
    llm: Annotated[bool, typer.Option("--llm", help="Shorthand for --kind llm.")] = False,
    base: LLMBaseOption = None,
    llm_train_seconds: LLMSecondsOption = 600.0,
    limit: LimitOption = None,
    seed: SeedOption = 0,
    max_epochs: EpochsOption = 40,
) -> None:
    """Train a policy on every given case and save it as a versioned artefact directory.

    Hold out evaluation data beforehand (selauto import split); this trains on all it is given.
    """
    try:
        if cases is not None:
            if schema is None:
                raise SelautoError("--cases needs --schema")
            process_schema = ProcessSchema.load(schema)
            chosen = [c for c in read_cases(cases) if c.process_id == process_schema.process_id]
            if not chosen:
                raise SelautoError(f"{cases} holds no case of process {process_schema.process_id!r}")
            picked = ProcessCases(schema=process_schema, cases=chosen)
        elif log is not None:
            datasets = load_settings().datasets_dir
            picked = _pick_process(load_log(log, mapping, limit=limit, data_dir=datasets), process)
        else:
            raise SelautoError("give --cases and --schema, or --log")
        if llm:
            kind = PolicyKind.llm
        llm_config = _llm_config(llm_train_seconds, base) if kind is PolicyKind.llm else None
        directory = train_policy(
            kind, picked.schema, picked.cases, out, seed=seed, max_epochs=max_epochs, llm=llm_config
        )
    except (SelautoError, FileNotFoundError) as error:
        raise _fail(error) from error
    steps = sum(len(c.steps) for c in picked.cases)
    typer.echo(
        f"wrote {directory}: {kind.value} policy for {picked.schema.process_id}, "
        f"{len(picked.cases)} cases, {steps} steps"
    )


def _llm_config(train_seconds: float, base: Path | None, work_dir: Path | None = None) -> LLMHarnessConfig:
    from selective_autonomy.inference.llm.harness import LLMHarnessConfig

    return LLMHarnessConfig(train_seconds=train_seconds, base=base, work_dir=work_dir)


def _train_all(splits: list[ProcessSplit], seed: int, max_epochs: int) -> tuple[dict[str, Policy], dict[str, float]]:
    """n-gram and embedded policies for every process, routed by process id, with total train seconds."""
    from selective_autonomy.inference.embedded_policy import EmbeddedPolicy
    from selective_autonomy.inference.ngram import NGramPolicy

    config = _embedded_config(seed, max_epochs)
    per_kind: dict[str, dict[str, Policy]] = {"ngram": {}, "embedded": {}}
    seconds = {"ngram": 0.0, "embedded": 0.0}
    for split in tqdm(splits, desc="train", unit="process", disable=len(splits) < 2):
        pid = split.schema.process_id
        started = time.perf_counter()
        per_kind["ngram"][pid] = NGramPolicy(split.schema).fit(split.train)
        seconds["ngram"] += time.perf_counter() - started
        started = time.perf_counter()
        per_kind["embedded"][pid] = EmbeddedPolicy.train(split.schema, split.train, config)
        seconds["embedded"] += time.perf_counter() - started
    return {kind: ProcessRouter(policies) for kind, policies in per_kind.items()}, seconds


def _latency(policies: dict[str, Policy], splits: list[ProcessSplit]) -> dict[str, dict[str, float]]:
    """Median ms to decide a batch of 256 states of the largest process (its test states, repeated if fewer).

    Wall time, and ``*_cpu``: this process's CPU time, the figure to trust on a shared machine.
    """
    from selective_autonomy.inference.embedded_policy import EmbeddedPolicy

    largest = max(splits, key=lambda s: sum(len(c.steps) for c in s.test))
    events = case_examples(largest.test).events
    batch = [events[i % len(events)] for i in range(LATENCY_BATCH)]
    out: dict[str, dict[str, float]] = {}
    for name, router in policies.items():
        policy = router.policies[largest.schema.process_id] if isinstance(router, ProcessRouter) else router
        runs: dict[str, Callable[[], object]] = {"propose_top3": partial(policy.propose, batch, top_k=3)}
        if isinstance(policy, EmbeddedPolicy):
            runs["encode"] = partial(policy.inputs, batch)
            runs["encode_forward"] = partial(policy.scores, batch)
        timings: dict[str, float] = {}
        for what, run in runs.items():
            timings[what] = median_ms(run)
            timings[f"{what}_cpu"] = median_ms(run, clock=time.process_time)
        out[name] = timings
    return out


def _evaluate_llm(splits: list[ProcessSplit], examples: Examples, config: LLMHarnessConfig) -> PolicyReport:
    """Train an LLM per process (time-boxed), serve each with vLLM in turn, and score it like the others.

    Its latency is the mean wall time per batch of 256 states over the whole evaluation, server
    start-ups left out (one request per batch, ``samples`` choices per state), not a median of
    repeats: a batch takes seconds.
    """
    import tempfile

    from selective_autonomy.inference.llm.harness import ServedPolicies, train_llm_policies

    root = config.work_dir or Path(tempfile.mkdtemp(prefix="selauto-llm-eval-"))
    trained = train_llm_policies([(s.schema, s.train) for s in splits], root / "artefacts", config)
    with ServedPolicies(trained, config, root) as served:
        started = time.perf_counter()
        report = evaluate_policy("llm", served, examples)
        seconds = time.perf_counter() - started
    startup = sum(served.startup_seconds.values())
    per_batch = (seconds - startup) * 1000.0 * LATENCY_BATCH / max(len(examples), 1)
    return report.model_copy(
        update={
            "train_seconds": sum(t.train_seconds for t in trained.values()),
            "latency_ms": {"propose_top3_mean": per_batch},
            "extra": {
                "server_startup_seconds": startup,
                "samples_per_state": float(config.samples),
                "train_seconds_limit_per_process": config.train_seconds,
            },
        }
    )


def evaluate_log(
    log: str,
    mapping: str | None = None,
    *,
    limit: int | None = None,
    seed: int = 0,
    max_epochs: int = 40,
    llm: LLMHarnessConfig | None = None,
    data_dir: Path | None = None,
) -> EvaluationReport:
    """Train n-gram and embedded policies on each process's chronological train part; score on its test part.

    :param llm: also train, serve (vLLM) and score an LLM policy per process; default None (not).
    :param data_dir: where built-in log names resolve (``settings.datasets_dir``); default the project's data/.
    """
    processes = load_log(log, mapping, limit=limit, data_dir=data_dir)
    splits = split_processes(processes, DEFAULT_FRACTIONS)
    if not splits:
        raise SelautoError(f"{log}: too few cases for a {DEFAULT_FRACTIONS} split")
    policies, seconds = _train_all(splits, seed, max_epochs)
    test_cases = [c for s in splits for c in s.test]
    examples = case_examples(test_cases)
    latency = _latency(policies, splits)
    reports: list[PolicyReport] = []
    for name, policy in policies.items():
        report = evaluate_policy(name, policy, examples)
        reports.append(report.model_copy(update={"train_seconds": seconds[name], "latency_ms": latency[name]}))
    if llm is not None:
        reports.append(_evaluate_llm(splits, examples, llm))
    per_process = "per process (one policy per SGD service)" if len(splits) > 1 else "over the cases"
    return EvaluationReport(
        log=log_label(log),
        source=f"{log}: chronological {DEFAULT_FRACTIONS} split {per_process}; trained on train, scored on test",
        fractions=DEFAULT_FRACTIONS,
        processes=len(splits),
        train_cases=sum(len(s.train) for s in splits),
        test_cases=len(test_cases),
        test_examples=len(examples),
        policies=reports,
    )


def eval_policy_command(
    log: Annotated[str, typer.Option("--log", help="helpdesk, bpi2012w, sgd-dev or the path of an XES/CSV log.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for policy_eval_<log>.json and .png.")],
    mapping: MappingOption = None,
    limit: LimitOption = None,
    seed: SeedOption = 0,
    max_epochs: EpochsOption = 40,
    llm: Annotated[
        bool, typer.Option("--llm", help="Also train an LLM policy per process and score it through a vLLM server.")
    ] = False,
    base: LLMBaseOption = None,
    llm_train_seconds: LLMSecondsOption = 300.0,
    llm_work_dir: Annotated[
        Path | None, typer.Option("--llm-work-dir", help="LLM artefacts and server logs; default a temp dir.")
    ] = None,
) -> None:
    """Train the n-gram baseline and the embedded policy (and with --llm the LLM policy) on a chronological
    split and compare them on its test part."""
    try:
        llm_config = _llm_config(llm_train_seconds, base, llm_work_dir) if llm else None
        report = evaluate_log(
            log,
            mapping,
            limit=limit,
            seed=seed,
            max_epochs=max_epochs,
            llm=llm_config,
            data_dir=load_settings().datasets_dir,
        )
    except (SelautoError, FileNotFoundError) as error:
        raise _fail(error) from error
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"policy_eval_{report.log}.json"
    json_path.write_text(report.model_dump_json(indent=2))
    plot_report(report, out / f"policy_eval_{report.log}.png")
    typer.echo(f"{report.log}: {report.test_examples} test steps in {report.test_cases} cases")
    for policy in report.policies:
        latency = ", ".join(f"{k} {v:.1f} ms" for k, v in policy.latency_ms.items())
        typer.echo(
            f"  {policy.name:9} top1 {policy.top1:.4f}  top3 {policy.top3:.4f}  type-top1 {policy.type_top1:.4f}  "
            f"train {policy.train_seconds or 0.0:.1f} s  batch-{LATENCY_BATCH}: {latency}"
        )
    typer.echo(f"wrote {json_path} and {json_path.with_suffix('.png')}")


policy_app.command("train")(train_policy_command)
policy_app.command("eval")(eval_policy_command)
