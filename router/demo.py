"""`router demo`: embedded broker, one real worker process, synthetic traffic, a live view."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import orjson
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from router import accounting, catalog, embedded, readback
from router.admin import ensure_topics
from router.buyers import Buyer
from router.config_file import load_buyers
from router.loadgen import produce
from router.records import OUTCOMES
from router.settings import Settings
from router.workers import WorkerProcesses

# Worker start-up plus draining the tail; the feed itself takes leads / rate seconds.
GRACE_S = 90.0


@dataclass
class Tally:
    zones: dict[str, str] = field(default_factory=dict)  # buyer id -> IANA zone
    produced: Counter[str] = field(default_factory=Counter)
    decided_keys: set[bytes] = field(default_factory=set)
    by_channel: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    sold: Counter[str] = field(default_factory=Counter)
    # Sales per buyer and buyer-local hour of the lead, so the view shows hourly caps holding.
    per_hour: Counter[tuple[str, str]] = field(default_factory=Counter)
    revenue: float = 0.0
    first_at: float | None = None
    last_at: float | None = None

    def add(self, key: bytes, value: bytes) -> None:
        if key in self.decided_keys:  # an at-least-once re-delivery, already counted
            return
        self.decided_keys.add(key)
        decision = orjson.loads(value)
        self.by_channel[decision["channel"]] += 1
        self.outcomes[decision["outcome"]] += 1
        self.revenue += decision["price"] or 0.0  # the total over every buyer of the lead
        occurred = decision["timings"].get("occurred_at")
        for buyer_id in decision["buyers"]:
            self.sold[buyer_id] += 1
            zone = self.zones.get(buyer_id)
            if occurred and zone:
                hour = accounting.windows(zone, datetime.fromisoformat(occurred)).hour
                self.per_hour[buyer_id, hour] += 1
        now = time.monotonic()
        self.first_at = self.first_at or now
        self.last_at = now

    def peak_hour(self, buyer_id: str) -> int:
        return max((n for (b, _), n in self.per_hour.items() if b == buyer_id), default=0)

    @property
    def rate(self) -> float:
        if self.first_at is None or self.last_at is None or self.last_at <= self.first_at:
            return 0.0
        return (len(self.decided_keys) - 1) / (self.last_at - self.first_at)


def render(tally: Tally, buyers: list[Buyer], target: int) -> Group:
    channels = Table(title="Leads in, per channel", expand=False)
    channels.add_column("channel")
    channels.add_column("produced", justify="right")
    channels.add_column("decided", justify="right")
    for channel in catalog.INTAKE:
        channels.add_row(channel, str(tally.produced[channel]), str(tally.by_channel[channel]))

    outcomes = Table(title="Outcomes")
    outcomes.add_column("outcome")
    outcomes.add_column("leads", justify="right")
    for outcome in OUTCOMES:
        outcomes.add_row(outcome, str(tally.outcomes[outcome]))

    sold = Table(title="Sold per buyer (against caps)")
    for column in ("buyer", "sold", "daily cap", "busiest hour", "hourly cap", "price"):
        sold.add_column(column, justify="left" if column == "buyer" else "right")

    def marked(count: int, cap: int | None) -> str:
        return f"[bold red]{count}[/]" if cap is not None and count >= cap else str(count)

    for buyer in buyers:
        daily, hourly = buyer.caps.daily, buyer.caps.hourly
        sold.add_row(
            buyer.id,
            marked(tally.sold[buyer.id], daily),
            "-" if daily is None else str(daily),
            marked(tally.peak_hour(buyer.id), hourly),
            "-" if hourly is None else str(hourly),
            f"{buyer.price:.2f}",
        )
    decided = len(tally.decided_keys)
    status = (
        f"decided {decided}/{target}  ·  {tally.rate:,.0f} decisions/s  ·  "
        f"revenue ${tally.revenue:,.2f}"
    )
    return Group(channels, outcomes, sold, status)


async def _watch(
    bootstrap: str, tally: Tally, target: int, deadline: float, live: Live, buyers: list[Buyer]
) -> None:
    async for batch in readback.follow(bootstrap, [catalog.DECISIONS], until=deadline):
        for record in batch:
            tally.add(record.key or b"", record.value or b"{}")
        live.update(render(tally, buyers, target))
        if len(tally.decided_keys) >= target:
            return


async def _feed_and_watch(
    settings: Settings, buyers: list[Buyer], leads: int, rate: float, seed: int, console: Console
) -> Tally:
    tally = Tally(zones={buyer.id: buyer.timezone for buyer in buyers})
    bootstrap = settings.bootstrap_servers
    deadline = time.monotonic() + leads / max(rate, 1.0) + GRACE_S
    with Live(render(tally, buyers, leads), console=console, refresh_per_second=4) as live:
        feeder = asyncio.create_task(produce(bootstrap, leads, rate, seed, keep_events=True))
        watcher = asyncio.create_task(_watch(bootstrap, tally, leads, deadline, live, buyers))
        report = await feeder
        tally.produced.update(e.channel for e in report.events)
        await watcher
        live.update(render(tally, buyers, leads))
    return tally


def run(settings: Settings, leads: int, rate: float, seed: int) -> int:
    console = Console()
    buyers = list(load_buyers(settings.buyers_file))
    workdir = Path(tempfile.mkdtemp(prefix="router-demo-"))
    console.print(f"[bold]lead-router demo[/]: {leads} leads at {rate:g}/s; logs in {workdir}")
    with embedded.running(workdir / "broker.log") as broker:
        settings = settings.model_copy(update={"bootstrap_servers": broker.bootstrap_servers})
        specs = catalog.catalog(settings.app_id, (b.id for b in buyers))
        asyncio.run(ensure_topics(broker.bootstrap_servers, specs, settings.partitions, 1))
        console.print(f"embedded broker on {broker.bootstrap_servers}; starting a worker")
        workers = WorkerProcesses(
            broker.bootstrap_servers,
            settings.buyers_file,
            workdir,
            app_id=settings.app_id,
            partitions=settings.partitions,
        )
        workers.start()
        try:
            started = time.monotonic()
            tally = asyncio.run(_feed_and_watch(settings, buyers, leads, rate, seed, console))
            elapsed = time.monotonic() - started
        finally:
            workers.stop()
    decided = len(tally.decided_keys)
    console.print(
        f"\n[bold]Summary[/]: {decided}/{leads} leads decided in {elapsed:.1f}s "
        f"({tally.rate:,.0f} decisions/s from first to last decision, fed at {rate:g}/s); "
        + ", ".join(f"{k} {v}" for k, v in sorted(tally.outcomes.items()))
        + f"; revenue ${tally.revenue:,.2f}"
    )
    if decided < leads:
        console.print(f"[red]{leads - decided} leads got no decision[/]; see {workdir}")
        return 1
    return 0
