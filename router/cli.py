"""The `router` console script."""

from __future__ import annotations

import asyncio
import json
import logging.config
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, Literal, NoReturn, TypeVar

import click

from router import catalog
from router.buyers import BuyersConfig
from router.catalog import TopicSpec
from router.config_file import ConfigError, load_config
from router.settings import Settings

T = TypeVar("T")

broker_option = click.option(
    "--broker",
    "--bootstrap",
    "bootstrap_servers",
    help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS).",
)
buyers_option = click.option(
    "--buyers",
    "buyers_file",
    type=click.Path(path_type=Path),
    help="Buyers YAML file (default: $ROUTER_BUYERS_FILE).",
)


def settings_from(**overrides: Any) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def buyers_or_exit(path: Path) -> tuple[Any, ...]:
    return tuple(config_or_exit(path).buyers)


def config_or_exit(path: Path) -> BuyersConfig:
    try:
        return load_config(path)
    except ConfigError as err:
        for message in err.messages():
            click.echo(f"error: {message}", err=True)
        sys.exit(2)


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def topics_or_exit(settings: Settings, specs: Sequence[TopicSpec]) -> dict[str, str]:
    """Create the missing topics, or exit naming each topic with the wrong partition count."""
    from router.admin import PartitionCountMismatch, ensure_topics

    try:
        return asyncio.run(
            ensure_topics(
                settings.bootstrap_servers, specs, settings.partitions, settings.replication_factor
            )
        )
    except PartitionCountMismatch as err:
        fail(str(err), code=2)


def run_against(bootstrap_servers: str, work: Coroutine[Any, Any, T]) -> T:
    """Run a control command's I/O; a broker problem is one line for the operator."""
    from aiokafka.errors import KafkaError

    try:
        return asyncio.run(work)
    except (KafkaError, TimeoutError) as exc:
        fail(f"broker {bootstrap_servers}: {exc or type(exc).__name__}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Kafka-native pull-model lead router."""


@main.command()
@broker_option
@buyers_option
@click.option("--web-port", type=int, help="HTTP port of this worker (default: $ROUTER_WEB_PORT).")
@click.option("--loglevel", "log_level", help="debug, info, warning or error.")
def worker(**options: Any) -> None:
    """Run a router worker. Workers with the same app id share the partitions."""
    from faust import Worker

    from router.app import create_app
    from router.logs import logging_config

    settings = settings_from(**options)
    config = config_or_exit(settings.buyers_file)
    if settings.create_topics:
        specs = catalog.catalog(settings.app_id, (b.id for b in config.buyers))
        topics_or_exit(settings, specs)
    app, _ = create_app(settings, config)
    # Our own config, not Faust's: it left the root logger at DEBUG, so every library
    # debug call built a log record (6 % of CPU in a profile) only for a handler to drop it.
    logging.config.dictConfig(logging_config(settings.log_level))
    # Faust's own CLI sends this before it starts a worker; we start the Worker ourselves.
    app.on_worker_init.send()
    Worker(app, override_logging=False, redirect_stdouts=False).execute_from_commandline()


@main.group()
def topics() -> None:
    """Topic catalog: create topics, export contracts."""


@topics.command("create")
@broker_option
@buyers_option
def topics_create(**options: Any) -> None:
    """Create every catalog topic and one buyer.<id> topic per buyer. Idempotent."""
    settings = settings_from(**options)
    buyers = buyers_or_exit(settings.buyers_file)
    specs = catalog.catalog(settings.app_id, (b.id for b in buyers))
    result = topics_or_exit(settings, specs)
    for name in sorted(result):
        click.echo(f"{result[name]:8} {name}")


@topics.command("export")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("topics"),
    show_default=True,
    help="Directory for catalog.json and schemas/.",
)
def topics_export(out: Path) -> None:
    """Write the topic catalog and JSON Schemas generated from the models."""
    from router.schemas import write

    for path in write(out):
        click.echo(f"wrote {path}")


@main.command()
@broker_option
@click.option("--count", type=int, default=1000, show_default=True, help="Events to produce.")
@click.option("--rate", type=float, default=200.0, show_default=True, help="Events/s; 0 = max.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same traffic.")
def produce(bootstrap_servers: str | None, count: int, rate: float, seed: int) -> None:
    """Produce realistic synthetic capture traffic to the intake topics."""
    from router.loadgen import produce as produce_traffic

    settings = settings_from(bootstrap_servers=bootstrap_servers)
    report = asyncio.run(produce_traffic(settings.bootstrap_servers, count, rate, seed))
    click.echo(
        json.dumps(
            {
                "produced": report.produced,
                "seconds": round(report.seconds, 3),
                "by_kind": dict(report.by_kind),
                "by_channel": dict(report.by_channel),
            }
        )
    )


@main.group()
def buyers() -> None:
    """Buyer configuration."""


@buyers.command("show")
@click.argument("file", type=click.Path(path_type=Path))
def buyers_show(file: Path) -> None:
    """Validate a buyers file and print it. Exits 2 naming file, line and field on errors."""
    from rich.console import Console
    from rich.table import Table

    loaded = buyers_or_exit(file)
    table = Table(title=f"{len(loaded)} buyers in {file}")
    for column in ("id", "verticals", "channels", "where", "min", "price", "prio", "caps", "tz"):
        table.add_column(column)
    for b in loaded:
        where = ",".join(b.states) or ",".join(f"{z}*" for z in b.postal_codes) or "any"
        caps = " ".join(f"{k}={v}" for k, v in b.caps.model_dump().items() if v is not None)
        if b.contact_by:
            consent = f" (consent: {','.join(b.contact_by)})"
        else:
            consent = " (consent)" if b.requires_consent else ""
        table.add_row(
            b.id + consent,
            ",".join(b.verticals),
            ",".join(b.channels),
            where,
            str(b.min_score),
            f"{b.price:.2f}",
            str(b.priority),
            caps or "-",
            b.timezone,
        )
    console = Console()
    if not console.is_terminal:  # piped output: don't squeeze the table into 80 columns
        console.width = 160
    console.print(table)


@buyers.command("apply")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--remove",
    type=click.Choice(["tombstone", "pause"]),
    default="tombstone",
    show_default=True,
    help="What happens to live buyers the file no longer lists.",
)
@click.option("--dry-run", is_flag=True, help="Print the changes without publishing them.")
@broker_option
def buyers_apply(
    file: Path,
    remove: Literal["tombstone", "pause"],
    dry_run: bool,
    bootstrap_servers: str | None,
) -> None:
    """Publish a buyers file to buyers.config: only what changed. Exits 2 on a bad file."""
    from router import control

    settings = settings_from(bootstrap_servers=bootstrap_servers)
    desired = config_or_exit(file)

    async def run() -> tuple[list[control.Change], int]:
        live = await control.read_live(
            settings.bootstrap_servers, verify_end_offsets=settings.verify_end_offsets
        )
        changes = control.plan(desired, live, remove)
        keys = set(control.desired_entries(desired)) | set(live)
        if not dry_run:
            # A new buyer's topic must exist before its first sale, as `topics create` does.
            from router.admin import ensure_topics

            wanted = {catalog.buyer_topic(b.id) for b in desired.buyers}
            await ensure_topics(
                settings.bootstrap_servers,
                [
                    s
                    for s in catalog.catalog(settings.app_id, desired_ids(desired))
                    if s.name in wanted
                ],
                settings.partitions,
                settings.replication_factor,
            )
            await control.apply(
                settings.bootstrap_servers,
                changes,
                partitions=settings.partitions,
                replication=settings.replication_factor,
            )
        return changes, len(keys) - len(changes)

    changes, unchanged = run_against(settings.bootstrap_servers, run())
    for change in changes:
        click.echo(f"{change.action:6} {change.key}")
    note = " (dry run: nothing published)" if dry_run else ""
    click.echo(f"{len(changes)} changed, {unchanged} unchanged{note}")


def desired_ids(config: BuyersConfig) -> list[str]:
    return [buyer.id for buyer in config.buyers]


@buyers.command("status")
@click.argument("buyer_id", metavar="[ID]", required=False)
@click.option(
    "--url",
    "urls",
    multiple=True,
    help="A worker's HTTP address; repeat for each worker (default: this host's web port).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the workers' answer as JSON.")
def buyers_status(buyer_id: str | None, urls: tuple[str, ...], as_json: bool) -> None:
    """Live cap usage per window, spend and state, read from the workers' HTTP API.

    Caps live on the worker that holds the buyer's partition: give every worker's --url and
    each buyer is reported by the worker that owns it.
    """
    from router import status

    settings = settings_from()
    targets = urls or (f"http://127.0.0.1:{settings.web_port}",)
    try:
        found = status.collect(targets, buyer_id)
    except status.StatusError as err:
        fail(str(err))
    if as_json:
        click.echo(json.dumps(found, indent=2, sort_keys=True))
    else:
        click.echo(status.render(found))


def _set_status(
    buyer_id: str, status: Literal["active", "paused"], bootstrap_servers: str | None
) -> None:
    from router import control

    settings = settings_from(bootstrap_servers=bootstrap_servers)
    try:
        change = run_against(
            settings.bootstrap_servers,
            control.set_status(
                settings.bootstrap_servers,
                buyer_id,
                status,
                partitions=settings.partitions,
                replication=settings.replication_factor,
                verify_end_offsets=settings.verify_end_offsets,
            ),
        )
    except control.ControlError as err:
        fail(str(err))
    click.echo(f"{buyer_id} is {status}" + ("" if change else " already; nothing published"))


@buyers.command("pause")
@click.argument("buyer_id", metavar="ID")
@broker_option
def buyers_pause(buyer_id: str, bootstrap_servers: str | None) -> None:
    """Pause a live buyer: it gets no leads until resumed. Exits 1 for an unknown buyer."""
    _set_status(buyer_id, "paused", bootstrap_servers)


@buyers.command("resume")
@click.argument("buyer_id", metavar="ID")
@broker_option
def buyers_resume(buyer_id: str, bootstrap_servers: str | None) -> None:
    """Resume a paused buyer. Exits 1 for an unknown buyer."""
    _set_status(buyer_id, "active", bootstrap_servers)


@main.command()
@click.option("--phone", help="Phone number; a US number may omit +1.")
@click.option("--email", help="Email address.")
@click.option("--reason", default="opt_out", show_default=True, help="Why, for the record.")
@broker_option
def suppress(
    phone: str | None, email: str | None, reason: str, bootstrap_servers: str | None
) -> None:
    """Suppress a consumer: its leads are never sold again.

    Publishes the sha256 of the normalized phone or email to consumers.suppression.
    Exits 2 for an invalid phone or email.
    """
    from router import control

    if (phone is None) == (email is None):
        fail("give exactly one of --phone or --email", 2)
    settings = settings_from(bootstrap_servers=bootstrap_servers)
    try:
        keys = run_against(
            settings.bootstrap_servers,
            control.suppress(
                settings.bootstrap_servers,
                phone=phone,
                email=email,
                reason=reason,
                partitions=settings.partitions,
                replication=settings.replication_factor,
            ),
        )
    except ValueError as err:
        fail(str(err), 2)
    kind = "phone" if phone is not None else "email"
    for key in keys:
        click.echo(f"suppressed {kind} {key} ({reason})")


@main.command()
@click.argument("event_id")
@broker_option
def explain(event_id: str, bootstrap_servers: str | None) -> None:
    """Tell what happened to one intake event, from leads.decisions. Exits 1 if not found."""
    from router.explain import find_decision, render

    settings = settings_from(bootstrap_servers=bootstrap_servers)
    try:
        decision = run_against(
            settings.bootstrap_servers,
            find_decision(
                settings.bootstrap_servers,
                event_id,
                verify_end_offsets=settings.verify_end_offsets,
            ),
        )
    except ValueError as err:
        fail(str(err))
    if decision is None:
        fail(f"no decision recorded for event {event_id!r}")
    click.echo(render(decision))


@main.command()
@click.option("--leads", type=int, default=1500, show_default=True, help="Leads to feed.")
@click.option("--rate", type=float, default=40.0, show_default=True, help="Leads/s fed.")
@click.option("--seed", type=int, default=7, show_default=True)
@buyers_option
def demo(leads: int, rate: float, seed: int, buyers_file: Path | None) -> None:
    """Embedded broker + one worker + synthetic traffic, with a live view. Exits by itself."""
    from router.demo import run

    settings = settings_from(buyers_file=buyers_file)
    buyers_or_exit(settings.buyers_file)
    sys.exit(run(settings, leads=leads, rate=rate, seed=seed))


@main.command()
@click.option("--leads", type=click.IntRange(min=1), default=20000, show_default=True)
@click.option("--partitions", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=1000.0,
    show_default=True,
    help="Leads/s of the paced (latency) run.",
)
@click.option(
    "--broker",
    "bootstrap_servers",
    help="Use this broker instead of starting the embedded one (topics and app ids are unique "
    "per run).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--timeout", type=float, help="Seconds each phase may take [default: from --leads].")
@click.option(
    "--stage3-writes",
    type=click.FloatRange(min=1),
    help="Records the topology's stage 3 writes per lead [default: match the router].",
)
@click.option(
    "--topology-runs",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Runs of the topology limit; the fastest is the limit.",
)
def bench(
    leads: int,
    partitions: int,
    workers: int,
    rate: float,
    bootstrap_servers: str | None,
    seed: int,
    timeout: float | None,
    stage3_writes: float | None,
    topology_runs: int,
) -> None:
    """Router throughput, latency and cost vs. a raw pipe and its topology. One JSON line."""
    from router.bench import Options, run

    options = Options(leads, partitions, workers, rate, seed, timeout, stage3_writes, topology_runs)
    sys.exit(run(options, bootstrap_servers))


if __name__ == "__main__":
    main()
