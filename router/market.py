"""The live market a lead is screened against: buyers and policies, opt-outs, publishers.

Workers build it from the control-plane topics; tests build it from plain values. Stages
only read it, so a snapshot is all they ever see.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

from router.buyers import Buyer, BuyersConfig
from router.records import PublisherQuality


def _nobody(_key: str) -> bool:
    return False


def _no_record(_publisher_id: str) -> PublisherQuality | None:
    return None


@dataclass(frozen=True)
class Market:
    config: BuyersConfig
    suppressed: Callable[[str], bool] = _nobody
    publisher: Callable[[str], PublisherQuality | None] = _no_record

    @cached_property
    def buyers(self) -> Mapping[str, Buyer]:
        return {buyer.id: buyer for buyer in self.config.buyers}


def of(buyers: list[Buyer] | tuple[Buyer, ...], **kwargs: object) -> Market:
    """A market of just these buyers with default policies (tests, the bench)."""
    return Market(BuyersConfig(buyers=list(buyers)), **kwargs)  # type: ignore[arg-type]


class MarketSource(Protocol):
    """Where agents get the market: `ready` once before their first event, then `current`."""

    def current(self) -> Market: ...

    async def ready(self) -> None: ...


@dataclass(frozen=True)
class StaticMarket:
    """A market that never changes (tests, the bench)."""

    market: Market

    def current(self) -> Market:
        return self.market

    async def ready(self) -> None:
        return None
