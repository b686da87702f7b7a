"""The vLLM launcher without vLLM: its command line and environment, and the process lifecycle
against a stand-in server (a few lines of http.server) that answers /v1/models like vLLM does."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import httpx
import pytest

from selective_autonomy.inference.llm.server import LoRAServing, ServerConfig, ServerError, VLLMServer, lora_rank_for

FAKE_SERVER = """
import http.server, json, subprocess, sys, time
port, name, pid_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # like vLLM's engine core
open(pid_file, "w").write(str(child.pid))
print("warming up", flush=True)
time.sleep(0.5)

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"object": "list", "data": [{"id": name}]}).encode()
        self.send_response(200 if self.path == "/v1/models" else 404)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


class StandIn(VLLMServer):
    def __init__(self, config: ServerConfig, script: str) -> None:
        super().__init__(config)
        self.script = script
        self.pid_file = self.work_dir / "child.pid"

    def command(self) -> list[str]:
        return [sys.executable, "-c", self.script, str(self.port), self.config.served_model_name, str(self.pid_file)]


def _config(tmp_path: Path, **kwargs: object) -> ServerConfig:
    return ServerConfig.model_validate(
        {"model_dir": tmp_path / "model", "served_model_name": "policy-llm-v1", "work_dir": tmp_path / "work", **kwargs}
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers signal 0 until reaped; its state in /proc tells.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


def test_command_line(tmp_path: Path) -> None:
    server = VLLMServer(_config(tmp_path, port=8123, max_model_len=256, enforce_eager=True, extra_args=("--seed", "1")))
    command = server.command()
    assert command[:3] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    args = dict(zip(command[3::2], command[4::2], strict=False))
    assert args["--model"] == str(tmp_path / "model")
    assert args["--served-model-name"] == "policy-llm-v1"
    assert (args["--host"], args["--port"], args["--dtype"], args["--max-model-len"]) == (
        "127.0.0.1", "8123", "float32", "256",
    )  # fmt: skip
    assert json.loads(args["--structured-outputs-config"]) == {"backend": "xgrammar", "disable_any_whitespace": True}
    assert "--enforce-eager" in command
    assert command[-2:] == ["--seed", "1"]
    assert server.url == "http://127.0.0.1:8123/v1"


def test_chunked_prefill_is_off_unless_asked_for(tmp_path: Path) -> None:
    # Seeded sampling with a split prefill kills the CPU engine; off, every prompt must fit one step.
    command = VLLMServer(_config(tmp_path, max_model_len=8192)).command()
    assert "--no-enable-chunked-prefill" in command
    assert command[command.index("--max-num-batched-tokens") + 1] == "8192"
    assert VLLMServer(_config(tmp_path)).command()[-1] == "4096"
    chunked = VLLMServer(_config(tmp_path, chunked_prefill=True, max_num_batched_tokens=256)).command()
    assert "--no-enable-chunked-prefill" not in chunked
    assert chunked[chunked.index("--max-num-batched-tokens") + 1] == "256"


def test_a_deep_work_dir_gets_a_short_tmpdir_for_ipc_sockets(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 90)
    server = VLLMServer(_config(tmp_path, work_dir=deep))
    tmp = Path(server.environment()["TMPDIR"])
    assert not tmp.is_relative_to(deep) and tmp.is_dir()
    assert len(str(tmp)) + 1 + 36 <= 107  # a UUID-named socket fits sockaddr_un
    assert Path(server.environment()["TMPDIR"]) == tmp  # one per server
    server.stop()
    assert not tmp.exists()


def test_environment_is_offline_and_contained(tmp_path: Path) -> None:
    server = VLLMServer(_config(tmp_path, kv_cache_gib=2, extra_env={"VLLM_LOGGING_LEVEL": "WARNING"}))
    env = server.environment()
    assert env["HF_HUB_OFFLINE"] == "1" and env["TRANSFORMERS_OFFLINE"] == "1"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "2"
    for key in ("VLLM_CACHE_ROOT", "TORCHINDUCTOR_CACHE_DIR"):
        assert Path(env[key]).is_relative_to(tmp_path / "work"), key
    # TMPDIR too, unless the work dir is too deep for IPC socket paths (then a short one of its own).
    tmp = Path(env["TMPDIR"])
    assert tmp.is_relative_to(tmp_path / "work") or tmp.name.startswith("selauto-vllm-")
    server.stop()
    assert env["VLLM_LOGGING_LEVEL"] == "WARNING"
    assert server.port > 0  # a free port was picked


def test_start_waits_for_the_model_and_stop_ends_the_process_group(tmp_path: Path) -> None:
    server = StandIn(_config(tmp_path, startup_timeout_s=30), FAKE_SERVER)
    with server:
        assert server.running
        assert server.startup_seconds is not None and server.startup_seconds >= 0.5
        assert httpx.get(f"{server.url}/models").json()["data"] == [{"id": "policy-llm-v1"}]
        child = int(server.pid_file.read_text())
        assert _alive(child)
        assert "warming up" in server.log_path.read_text()
    assert not server.running
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_a_server_that_dies_while_starting_raises_with_its_log(tmp_path: Path) -> None:
    server = StandIn(_config(tmp_path), "import sys; print('no attention backend for head size 48'); sys.exit(3)")
    with pytest.raises(ServerError, match=r"(?s)code 3.*no attention backend for head size 48"):
        server.start()
    assert not server.running


def test_a_server_that_never_gets_ready_times_out(tmp_path: Path) -> None:
    server = StandIn(_config(tmp_path, startup_timeout_s=1.0), "import time; time.sleep(60)")
    started = time.monotonic()
    with pytest.raises(ServerError, match=r"not ready after 1\.0s"):
        server.start()
    assert time.monotonic() - started < 30
    assert not server.running


def test_lora_serving_command_line_and_environment(tmp_path: Path) -> None:
    adapters = {"critic-llm-v1": tmp_path / "critic", "policy-llm-v2": tmp_path / "policy"}
    lora = LoRAServing(adapters=adapters, max_lora_rank=lora_rank_for([8, 4]), max_loras=2, max_cpu_loras=6)
    server = VLLMServer(_config(tmp_path, lora=lora))
    command = server.command()
    at = command.index("--enable-lora")
    assert command[at:] == [
        "--enable-lora", "--max-lora-rank", "8", "--max-loras", "2", "--max-cpu-loras", "6",
        "--lora-modules", f"critic-llm-v1={tmp_path / 'critic'}", f"policy-llm-v2={tmp_path / 'policy'}",
    ]  # fmt: skip
    assert server.environment()["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert server.served_names == {"policy-llm-v1", "critic-llm-v1", "policy-llm-v2"}
    fixed = VLLMServer(_config(tmp_path, lora=LoRAServing(runtime_loading=False)))
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING" not in fixed.environment()
    assert "--lora-modules" not in fixed.command()
    plain = VLLMServer(_config(tmp_path))
    assert "--enable-lora" not in plain.command() and "VLLM_ALLOW_RUNTIME_LORA_UPDATING" not in plain.environment()


def test_lora_ranks_are_the_ones_vllm_takes() -> None:
    assert [lora_rank_for(r) for r in ([], [1], [2, 8], [9], [64])] == [1, 1, 8, 16, 64]
    with pytest.raises(ValueError, match="beyond"):
        lora_rank_for([1024])
    with pytest.raises(ValueError, match="max_lora_rank must be one of"):
        LoRAServing(max_lora_rank=12)
