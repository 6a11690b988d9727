"""Faust topics and tables, declared once. Agents import these; nothing imports agents."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    offers_topic: str = catalog.OFFERS
    call_events_topic: str = catalog.CALL_EVENTS
    quality_topic: str = catalog.PUBLISHER_QUALITY
    _outputs: dict[str, TopicT] = field(default_factory=dict)

    def output(self, name: str) -> TopicT:
        """A raw-bytes topic handle, made once per name (buyer topics are open-ended)."""
        topic = self._outputs.get(name)
        if topic is None:
            topic = self._outputs[name] = _raw_topic(self.app, name)
        return topic


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

    screen = _raw_topic(app, catalog.SCREEN)
    signals = _raw_topic(app, catalog.PUBLISHER_SIGNALS)
    return Topology(
        app=app,
        intake=_raw_topic(app, *catalog.INTAKE.values()),
        screen=screen,
        buyer_desk=_raw_topic(app, catalog.OFFERS, catalog.FEEDBACK, catalog.CALL_EVENTS),
        publisher_signals=signals,
        dedup=table(catalog.DEDUP_TABLE),
        caps=table(catalog.CAPS_TABLE),
        publishers=table(catalog.PUBLISHERS_TABLE),
        channel_of={topic: channel for channel, topic in catalog.INTAKE.items()},
        _outputs={catalog.SCREEN: screen, catalog.PUBLISHER_SIGNALS: signals},
    )
