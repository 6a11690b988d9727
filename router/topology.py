"""Faust topics and tables, declared once. Agents import these; nothing imports agents."""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, cast

import faust
from faust.types import TableT, TopicT

from router import catalog
from router.contract import Channel
from router.settings import Settings


@dataclass
class Topology:
    app: faust.App
    intake: TopicT
    screen: TopicT
    buyer_desk: TopicT  # offers, feedback and call events: all keyed by buyer id
    publisher_signals: TopicT
    dedup: TableT
    caps: TableT
    publishers: TableT
    channel_of: dict[str, Channel]
    partitions: int  # of every stream topic and table changelog (co-partitioned)
    offers_topic: str = catalog.OFFERS
    call_events_topic: str = catalog.CALL_EVENTS
    quality_topic: str = catalog.PUBLISHER_QUALITY


def store_of(table: TableT) -> MutableMapping[Any, Any]:
    """A table's values as a plain mapping, read and written by agents and `router/output.py`.

    Faust's in-memory store keeps them in a dict (`.data`). `Table.get` adds a sensor call per
    key and the store's `Mapping.get` raises and catches a KeyError per missing key: together
    about 5 % of a worker's samples (docs/performance.md row 32). Any other store is used as it is.
    """
    store = table.data
    return cast(MutableMapping[Any, Any], getattr(store, "data", store))


def _raw_topic(app: faust.App, *names: str) -> TopicT:
    # Raw bytes in and out: a malformed payload must reach our own decoder, never fail
    # inside Faust's deserializer where it would be logged and dropped.
    return app.topic(*names, key_serializer="raw", value_serializer="raw")


def declare(app: faust.App, settings: Settings) -> Topology:
    partitions = settings.partitions

    def table(name: str) -> TableT:
        return app.Table(
            name,
            default=None,
            partitions=partitions,
            schema=faust.Schema(key_serializer="json", value_serializer="json"),
        )

    return Topology(
        app=app,
        intake=_raw_topic(app, *catalog.INTAKE.values()),
        screen=_raw_topic(app, catalog.SCREEN),
        buyer_desk=_raw_topic(app, catalog.OFFERS, catalog.FEEDBACK, catalog.CALL_EVENTS),
        publisher_signals=_raw_topic(app, catalog.PUBLISHER_SIGNALS),
        dedup=table(catalog.DEDUP_TABLE),
        caps=table(catalog.CAPS_TABLE),
        publishers=table(catalog.PUBLISHERS_TABLE),
        channel_of={topic: channel for channel, topic in catalog.INTAKE.items()},
        partitions=partitions,
    )
