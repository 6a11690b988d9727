"""A TCP proxy between the router and the broker cuts every connection for 10 s, twice.

The broker advertises the proxy's port in its metadata (`embedded.start(advertised_port=...)`),
so every client (workers, the load generator, the auditor) reaches it only through the proxy.
A cut aborts every open socket pair (RST) and closes the listening socket, so reconnects are
refused until it is restored. The router has to come back by itself, with nothing lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from chaos_conftest import (
    PARTITIONS,
    WORKER_ENV,
    Load,
    Workers,
    audit,
    group_progress,
    wait_ready,
)

from router import embedded
from router.buyers import Buyer

pytestmark = pytest.mark.slow

RATE = 150
CUT_S = 10.0
CUTS = 2
RESUME_DEADLINE_S = 120.0


class Proxy:
    """Forwards 127.0.0.1:<listen_port> to 127.0.0.1:<target_port>, on its own event loop."""

    def __init__(self, listen_port: int) -> None:
        self.listen_port = listen_port
        self.target_port: int | None = None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="proxy", daemon=True)
        self.server: asyncio.Server | None = None
        self.pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self.down = False
        self.accepted = 0
        self.severed = 0

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def start(self) -> Proxy:
        self.thread.start()
        self._run(self._listen())
        return self

    def cut(self) -> int:
        """Sever every connection and refuse new ones; returns how many pairs were cut."""
        return int(self._run(self._cut()))

    def restore(self) -> None:
        self._run(self._listen())

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.cut()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        if not self.thread.is_alive():
            self.loop.close()

    async def _listen(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.listen_port)
        self.down = False

    async def _cut(self) -> int:
        self.down = True
        if self.server is not None:
            self.server.close()
            self.server = None
        pairs = list(self.pairs)
        for client, upstream in pairs:
            client.transport.abort()
            upstream.transport.abort()
        self.severed += len(pairs)
        return len(pairs)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down or self.target_port is None:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.accepted += 1
        pair = (writer, up_writer)
        self.pairs.add(pair)
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self.pairs.discard(pair)
            writer.transport.abort()
            up_writer.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()


async def _advertised_ports(bootstrap_servers: str) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        return sorted(int(b["port"]) for b in cluster["brokers"])
    finally:
        await admin.close()


def test_advertised_port_is_what_clients_are_told(tmp_path: Path) -> None:
    """`embedded.start(advertised_port=...)` changes the metadata only; the default does not."""
    with embedded.running(tmp_path / "default.log") as plain:
        assert asyncio.run(_advertised_ports(plain.bootstrap_servers)) == [plain.port]
    proxy = Proxy(embedded.free_port()).start()
    try:
        with embedded.running(tmp_path / "proxied.log", advertised_port=proxy.listen_port) as b:
            proxy.target_port = b.port
            # Told the proxy's port whether asked directly or through the proxy ...
            assert asyncio.run(_advertised_ports(b.bootstrap_servers)) == [proxy.listen_port]
            via_proxy = f"127.0.0.1:{proxy.listen_port}"
            assert asyncio.run(_advertised_ports(via_proxy)) == [proxy.listen_port]
            assert proxy.accepted > 0
            # ... and a cut really takes the broker away from clients.
            proxy.cut()
            with pytest.raises((KafkaError, OSError, TimeoutError)):
                asyncio.run(asyncio.wait_for(_advertised_ports(via_proxy), 5))
            proxy.restore()
            assert asyncio.run(_advertised_ports(via_proxy)) == [proxy.listen_port]
    finally:
        proxy.stop()


def _wait_progress(bootstrap: str, group_id: str, above: int, deadline_s: float) -> float | None:
    """Seconds until the group's committed offsets move past `above`, or None."""
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        with contextlib.suppress(Exception):
            committed, _ = group_progress(bootstrap, group_id)
            if committed > above:
                return round(time.monotonic() - started, 1)
        time.sleep(0.5)
    return None


def test_connection_loss(tmp_path: Path, buyers_file: tuple[Path, dict[str, Buyer]]) -> None:
    path, buyers = buyers_file
    proxy = Proxy(embedded.free_port()).start()
    broker = embedded.start(tmp_path / "tansu.log", advertised_port=proxy.listen_port)
    proxy.target_port = broker.port
    via_proxy = f"127.0.0.1:{proxy.listen_port}"
    group = Workers(broker, path, tmp_path, partitions=PARTITIONS)
    load: Load | None = None
    failed = True
    try:
        assert asyncio.run(_advertised_ports(broker.bootstrap_servers)) == [proxy.listen_port]
        processes = [group.start(**WORKER_ENV, KAFKA_BOOTSTRAP_SERVERS=via_proxy) for _ in range(2)]
        for process in processes:
            wait_ready(group, process)
        load = Load(via_proxy, rate=RATE, seed=77).start()

        cuts: list[dict[str, Any]] = []
        time.sleep(15)
        for _ in range(CUTS):
            accepted_before = proxy.accepted
            severed = proxy.cut()
            time.sleep(CUT_S)
            proxy.restore()
            # Nothing can commit while the broker is away: what is committed now is where the
            # group stood when the cut began. Progress past it means the router is back.
            committed_at_restore, _ = group_progress(via_proxy, group.app_id)
            resumed = _wait_progress(
                via_proxy, group.app_id, committed_at_restore, RESUME_DEADLINE_S
            )
            cuts.append(
                {
                    "severed": severed,
                    "resumed_s": resumed,
                    "reconnects": proxy.accepted - accepted_before,
                    "workers_alive": sum(p.poll() is None for p in processes),
                }
            )
            time.sleep(20)
        load.stop()
        stopped = time.monotonic()

        result = audit(via_proxy, buyers, group.app_id, since=stopped, log_dir=tmp_path)
        alive = [p.poll() is None for p in processes]
        exits = [p.returncode for p in processes]
        result.violations += [
            *([] if all(alive) else [f"workers died: alive={alive} exit codes={exits}"]),
            *(f"cut {i + 1}: no progress" for i, c in enumerate(cuts) if c["resumed_s"] is None),
        ]
        line = result.report(
            "connection_loss",
            cuts=cuts,
            load={"sent": load.sent, "acked": load.acked, "failed": load.failed},
            load_errors=dict(load.errors),
        )
        assert all(c["severed"] > 0 for c in cuts), cuts
        assert line["violations"] == []
        failed = False
    finally:
        if load is not None:
            with contextlib.suppress(AssertionError):
                load.stop()
        group.stop_all()
        if failed:
            print(group.logs())
        broker.stop()
        proxy.stop()
