"""The LLM policy and critic in the evaluation harnesses: train one per process, serve it with vLLM, ask it.

``selauto eval policy --llm`` compares the LLM policy with the n-gram and embedded policies on the
same chronological split. An LLM is trained on each process's train part (time-boxed), and one vLLM
server at a time serves it: :class:`ServedPolicies` starts the server of a process when the first
state of that process arrives and stops the previous one, so a log with many processes (SGD) needs
the memory of one server only. The harness feeds states grouped by process, so each server starts
once. ``selauto eval critic --llm`` trains the LLM critic on the copilot feedback the embedded critic
trains on and serves it while both are certified and scored (:func:`served_llm_critic`).

Transformers is imported when training starts; vLLM runs in its own process.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from selective_autonomy.closing import ClosedOnExit
from selective_autonomy.config import DEFAULT_TOP_K
from selective_autonomy.inference.critic import PlattScaled
from selective_autonomy.inference.llm.critic import LLMCritic
from selective_autonomy.inference.llm.policy import LLMPolicy
from selective_autonomy.inference.llm.prompts import DEFAULT_MAX_NEW_TOKENS
from selective_autonomy.inference.llm.server import ServerConfig, VLLMServer
from selective_autonomy.inference.llm.settings import LLMClientSettings
from selective_autonomy.inference.llm.sft_config import SFTConfig
from selective_autonomy.inference.llm.sft_data import CriticTriple
from selective_autonomy.inference.protocol import Critic, CriticInput, ModelUnavailable, Policy, Proposal
from selective_autonomy.schemas.events import UIStateChanged
from selective_autonomy.schemas.identifiers import process_dir_name
from selective_autonomy.schemas.process import ProcessSchema
from selective_autonomy.traces.format import Case

log = logging.getLogger(__name__)


class LLMHarnessConfig(BaseModel):
    """How the harness trains and serves the LLM policy of each process."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    train_seconds: float = Field(default=300.0, gt=0, description="Training time limit per process.")
    epochs: int = Field(default=3, ge=1, description="Passes over the train part (if time allows).")
    batch_size: int = Field(
        default=16, ge=1, description="Examples per step (a pretrained base: 4 gives 4x the updates in a time box)."
    )
    max_model_len: int = Field(default=512, ge=64, description="Prompt plus answer tokens.")
    max_new_tokens: int = Field(default=DEFAULT_MAX_NEW_TOKENS, ge=4, description="Room for the action JSON.")
    base: Path | None = Field(default=None, description="Local pretrained model to LoRA-tune; None: from scratch.")
    samples: int = Field(default=8, ge=1, description="Choices sampled per state; distinct ones become candidates.")
    max_num_seqs: int = Field(default=64, ge=1, description="Sequences the server decodes together.")
    request_timeout_s: float = Field(default=900.0, gt=0, description="One batch of 256 states may take minutes.")
    work_dir: Path | None = Field(default=None, description="Artefacts and server caches; None: a temp dir.")


@dataclass(frozen=True, slots=True)
class TrainedLLM:
    schema: ProcessSchema
    directory: Path
    version: str
    train_seconds: float


def train_llm_policies(
    parts: Sequence[tuple[ProcessSchema, Sequence[Case]]], root: Path, config: LLMHarnessConfig
) -> dict[str, TrainedLLM]:
    """One ``policy-llm`` artefact per process, trained on its cases, under ``root/<process id>``."""
    from selective_autonomy.inference.llm.sft import train_policy

    sft = sft_config(config)
    trained: dict[str, TrainedLLM] = {}
    for schema, cases in parts:
        directory = root / process_dir_name(schema.process_id)
        if directory.exists():
            shutil.rmtree(directory)
        started = time.perf_counter()
        meta = train_policy(cases, schema, directory, sft, base=config.base)
        seconds = time.perf_counter() - started
        log.info("LLM policy for %s: %s in %.0f s, %s", schema.process_id, meta.version, seconds, meta.metrics)
        trained[schema.process_id] = TrainedLLM(schema, directory, meta.version, seconds)
    return trained


def harness_server(directory: Path, name: str, config: LLMHarnessConfig, work_dir: Path) -> VLLMServer:
    """A vLLM server (not started) for the artefact in ``directory``, served as ``name``."""
    return VLLMServer(
        ServerConfig(
            model_dir=directory,
            served_model_name=name,
            max_model_len=config.max_model_len,
            max_num_seqs=config.max_num_seqs,
            # A small model: compiling costs more start-up time than it saves in decoding.
            enforce_eager=config.base is None,
            work_dir=work_dir,
            startup_timeout_s=900,
        )
    )


def client_settings(server: VLLMServer, config: LLMHarnessConfig) -> LLMClientSettings:
    return LLMClientSettings(url=server.url, timeout_s=config.request_timeout_s, max_retries=0)


def sft_config(config: LLMHarnessConfig) -> SFTConfig:
    """Fine-tuning settings of the harness: its time box, epochs and context."""
    return SFTConfig(
        epochs=config.epochs,
        batch_size=config.batch_size,
        max_seconds=config.train_seconds,
        max_model_len=config.max_model_len,
        max_new_tokens=config.max_new_tokens,
    )


@contextmanager
def served_llm_critic(
    schema: ProcessSchema,
    train: Sequence[CriticTriple],
    select: Sequence[CriticInput],
    select_labels: Sequence[bool],
    config: LLMHarnessConfig,
    work_dir: Path,
) -> Iterator[Critic]:
    """An LLM critic trained on ``train`` (time-boxed), served by vLLM while the block runs, and
    Platt-scaled on ``select`` (held-out answers) as the embedded critic is, so one gate certifies both.

    Yields the scaled critic; the server stops when the block ends.
    """
    from selective_autonomy.inference.llm.sft import train_llm_critic

    directory = work_dir / "critic" / process_dir_name(schema.process_id)
    if directory.exists():
        shutil.rmtree(directory)
    started = time.perf_counter()
    meta = train_llm_critic(train, schema, directory, sft_config(config), base=config.base)
    log.info("LLM critic for %s: %s in %.0f s", schema.process_id, meta.version, time.perf_counter() - started)
    name = f"server-critic-{process_dir_name(schema.process_id)}"
    with harness_server(directory, meta.version, config, work_dir / name) as server:
        critic = LLMCritic.load(directory, schema, client_settings(server, config))
        yield PlattScaled.fit(critic, select, select_labels)


class ServedPolicies(ClosedOnExit):
    """A :class:`Policy` over one LLM per process, each served by vLLM while its states are proposed.

    Use as a context manager so the last server is stopped. ``startup_seconds`` records how long each
    server took to become ready (kept out of the proposal timings).
    """

    def __init__(self, trained: dict[str, TrainedLLM], config: LLMHarnessConfig, work_dir: Path) -> None:
        self.trained = trained
        self.config = config
        self.work_dir = work_dir
        self.startup_seconds: dict[str, float] = {}
        self._current: tuple[str, VLLMServer, Policy] | None = None

    @property
    def version(self) -> str:
        versions = sorted({t.version for t in self.trained.values()})
        return versions[0] if len(versions) == 1 else f"{len(versions)} versions"

    def propose(self, events: Sequence[UIStateChanged], top_k: int = DEFAULT_TOP_K) -> list[Proposal]:
        out: list[Proposal | None] = [None] * len(events)
        # Contiguous runs of one process, so states that arrive grouped start each server once.
        start = 0
        while start < len(events):
            process_id = events[start].process_id
            end = start
            while end < len(events) and events[end].process_id == process_id:
                end += 1
            policy = self._policy(process_id)
            for i, proposal in enumerate(policy.propose(events[start:end], top_k), start=start):
                out[i] = proposal
            start = end
        return [p for p in out if p is not None]

    def _policy(self, process_id: str) -> Policy:
        if self._current is not None and self._current[0] == process_id:
            return self._current[2]
        trained = self.trained.get(process_id)
        if trained is None:
            raise ModelUnavailable(f"no LLM policy for process {process_id!r}")
        self.close()
        server, policy = self._serve(trained)
        self.startup_seconds[process_id] = server.startup_seconds or 0.0
        self._current = (process_id, server, policy)
        return policy

    def _serve(self, trained: TrainedLLM) -> tuple[VLLMServer, Policy]:
        """Start a vLLM server on ``trained`` (blocking until ready) and the policy that asks it."""
        name = f"server-{process_dir_name(trained.schema.process_id)}"
        server = harness_server(trained.directory, trained.version, self.config, self.work_dir / name)
        server.start()
        policy = LLMPolicy.load(trained.directory, trained.schema, client_settings(server, self.config))
        policy.samples = self.config.samples
        return server, policy

    def close(self) -> None:
        if self._current is not None:
            self._current[1].stop()
            self._current = None
