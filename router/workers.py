"""`router worker` subprocesses on one broker: used by the demo, the bench and the tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from router.embedded import free_port


@dataclass
class WorkerProcesses:
    bootstrap_servers: str
    buyers_file: Path
    log_dir: Path
    app_id: str = "lead-router"
    partitions: int = 4
    env: Mapping[str, str] = field(default_factory=dict)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    web_ports: list[int] = field(default_factory=list)

    def start(self, **env: str) -> subprocess.Popen[bytes]:
        """Start one more worker; `env` overrides settings for this one only."""
        index = len(self.processes)
        web_port = free_port()
        environment = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "ROUTER_BUYERS_FILE": str(self.buyers_file),
            "ROUTER_APP_ID": self.app_id,
            "ROUTER_PARTITIONS": str(self.partitions),
            "ROUTER_WEB_PORT": str(web_port),
            # These processes run against the embedded broker, whose end offsets need it.
            "ROUTER_VERIFY_END_OFFSETS": "true",
            **self.env,
            **env,
        }
        with open(self.log_path(index), "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "router", "worker"],
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.processes.append(process)
        self.web_ports.append(web_port)
        return process

    def log_path(self, index: int) -> Path:
        return self.log_dir / f"worker-{index}.log"

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL: no shutdown hooks, no final commit or flush."""
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def check_alive(self) -> None:
        for index, process in enumerate(self.processes):
            if process.poll() is not None:
                raise RuntimeError(
                    f"worker {index} exited with {process.returncode}; log: {self.log_path(index)}"
                )

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)

    def logs(self, tail_chars: int = 4000) -> str:
        return "\n".join(
            self.log_path(i).read_text(errors="replace")[-tail_chars:]
            for i in range(len(self.processes))
        )
