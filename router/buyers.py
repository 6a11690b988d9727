"""A buyer's declared demand: what it wants, how much, when, at what price."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from router.contract import CHANNELS, Channel

US_STATES = frozenset(
    [
        "AL",
        "AK",
        "AZ",
        "AR",
        "CA",
        "CO",
        "CT",
        "DE",
        "DC",
        "FL",
        "GA",
        "HI",
        "ID",
        "IL",
        "IN",
        "IA",
        "KS",
        "KY",
        "LA",
        "ME",
        "MD",
        "MA",
        "MI",
        "MN",
        "MS",
        "MO",
        "MT",
        "NE",
        "NV",
        "NH",
        "NJ",
        "NM",
        "NY",
        "NC",
        "ND",
        "OH",
        "OK",
        "OR",
        "PA",
        "RI",
        "SC",
        "SD",
        "TN",
        "TX",
        "UT",
        "VT",
        "VA",
        "WA",
        "WV",
        "WI",
        "WY",
        "PR",
        "VI",
        "GU",
        "AS",
        "MP",
    ]
)


class Caps(BaseModel):
    """Count caps per window, counted in the buyer's own time zone. None means no cap."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hourly: Annotated[int, Field(ge=0)] | None = None
    daily: Annotated[int, Field(ge=0)] | None = None


class Buyer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    name: Annotated[str, Field(min_length=1)]
    verticals: Annotated[list[str], Field(min_length=1)]
    channels: list[Channel] = Field(default_factory=lambda: list(CHANNELS))
    states: list[str] = Field(default_factory=list, description="Empty means every state")
    postal_codes: list[Annotated[str, Field(pattern=r"^\d{1,5}$")]] = Field(
        default_factory=list, description="Full ZIPs or ZIP prefixes; empty means any"
    )
    min_score: Annotated[int, Field(ge=0, le=100)] = 0
    price: Annotated[float, Field(gt=0)]
    priority: Annotated[int, Field(ge=0, description="Lower is preferred when prices tie")] = 100
    caps: Caps = Field(default_factory=Caps)
    timezone: str = "America/New_York"
    requires_consent: bool = False

    @field_validator("states")
    @classmethod
    def _known_states(cls, states: list[str]) -> list[str]:
        unknown = sorted(set(states) - US_STATES)
        if unknown:
            raise ValueError(f"unknown US state code(s): {', '.join(unknown)}")
        return states

    @field_validator("timezone")
    @classmethod
    def _iana_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"not an IANA time zone: {name!r}") from exc
        return name


class BuyersConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    buyers: list[Buyer]

    @model_validator(mode="after")
    def _unique_ids(self) -> BuyersConfig:
        seen: set[str] = set()
        for buyer in self.buyers:
            if buyer.id in seen:
                raise ValueError(f"duplicate buyer id {buyer.id!r}")
            seen.add(buyer.id)
        return self
