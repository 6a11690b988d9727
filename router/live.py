"""The worker's live market, kept current from the control-plane topics.

- `buyers.config`: buyers and vertical policies (`router buyers apply`, `pause`, `resume`).
  Until anything is published there, the buyers file the worker started with is the market;
  from then on the topic is the source of truth.
- `consumers.suppression`: opt-outs (`router suppress`).
- `publishers.quality`: each publisher's track record, for scoring.

Each is read whole by every worker (a global table), so a change takes effect for the next
lead on every worker without a restart.
"""

from __future__ import annotations

import asyncio
import logging

from router import catalog, codec
from router.buyers import BuyersConfig
from router.market import Market
from router.records import PublisherQuality
from router.views import MarketConfig, TopicView

log = logging.getLogger(__name__)


class LiveMarket:
    def __init__(
        self,
        bootstrap_servers: str,
        seed: BuyersConfig,
        *,
        verify_end_offsets: bool = False,
        ready_timeout_s: float = 30.0,
    ) -> None:
        def view(topic: str) -> TopicView:
            return TopicView(bootstrap_servers, topic, verify_end_offsets=verify_end_offsets)

        self.seed = seed
        self.config_view = view(catalog.BUYERS_CONFIG)
        self.suppression_view = view(catalog.SUPPRESSION)
        self.quality_view = view(catalog.PUBLISHER_QUALITY)
        self._config = MarketConfig(self.config_view)
        self._ready_timeout_s = ready_timeout_s
        self._started: asyncio.Task[None] | None = None
        self._built_at: tuple[int, int] = (-1, -1)
        self._market = Market(seed, self._is_suppressed, self._publisher)
        self._publishers: dict[str, PublisherQuality | None] = {}

    async def ready(self) -> None:
        """Start reading (once) and wait until each topic has been read to its end."""
        if self._started is None:
            self._started = asyncio.ensure_future(self._start())
        await asyncio.shield(self._started)

    async def _start(self) -> None:
        views = (self.config_view, self.suppression_view, self.quality_view)
        for view in views:
            await view.start()
        # Waited for together: three missing topics must not cost three timeouts.
        caught_up = await asyncio.gather(
            *(view.wait_caught_up(self._ready_timeout_s) for view in views)
        )
        for view, done in zip(views, caught_up, strict=True):
            if not done:
                # Better to route on what is known than to stop routing: say so loudly.
                log.warning(
                    "control topic not read to its end in time", extra={"topic": view.topic}
                )

    async def stop(self) -> None:
        for view in (self.config_view, self.suppression_view, self.quality_view):
            await view.stop()

    @property
    def versions(self) -> dict[str, int]:
        return {
            view.topic: view.version
            for view in (self.config_view, self.suppression_view, self.quality_view)
        }

    def current(self) -> Market:
        built = (self.config_view.version, self.quality_view.version)
        if built != self._built_at:
            # Once anything was published to buyers.config (even a tombstone), the topic is
            # the truth: deleting every buyer there must stop selling, not revive the file.
            self._market = Market(
                self._config.config if self.config_view.version else self.seed,
                self._is_suppressed,
                self._publisher,
            )
            self._publishers = {}
            self._built_at = built
        return self._market

    def _is_suppressed(self, key: str) -> bool:
        return key in self.suppression_view

    def _publisher(self, publisher_id: str) -> PublisherQuality | None:
        if publisher_id not in self._publishers:
            raw = self.quality_view.get(publisher_id)
            try:
                found = codec.decode(PublisherQuality, raw) if raw else None
            except codec.Unreadable:
                found = None
            self._publishers[publisher_id] = found
        return self._publishers[publisher_id]
