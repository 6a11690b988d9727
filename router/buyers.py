"""A buyer's declared demand: what it wants, how much, when, at what price."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from router.contract import CHANNELS, Channel, ContactChannel

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


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RuleOp = Literal["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "exists"]
Strategy = Literal["priority", "highest_bid", "weighted_round_robin"]
# Contact fields a buyer can choose to receive (`fields:`); the rest of the lead always goes.
ContactField = Literal[
    "first_name",
    "last_name",
    "email",
    "phone",
    "phone_line_type",
    "postal_code",
    "state",
    "city",
    "timezone",
    "address",
    "company",
]
CONTACT_FIELDS: tuple[ContactField, ...] = get_args(ContactField)
_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Caps(_Frozen):
    """Caps per window, all in the buyer's own time zone. None means no cap."""

    hourly: Annotated[int, Field(ge=0)] | None = None
    daily: Annotated[int, Field(ge=0)] | None = None
    weekly: Annotated[int, Field(ge=0, description="ISO week, Monday to Sunday")] | None = None
    monthly: Annotated[int, Field(ge=0)] | None = None
    daily_budget: Annotated[float, Field(ge=0, description="Spend per local day")] | None = None
    monthly_budget: Annotated[float, Field(ge=0)] | None = None
    concurrent_calls: Annotated[int, Field(ge=0, description="Live calls at once")] | None = None
    call_slot_ttl_s: Annotated[
        int, Field(gt=0, description="A call slot frees itself after this long without call.ended")
    ] = 3600


class Rule(_Frozen):
    """An attribute filter: `field` is a dotted path into the lead, e.g. attributes.credit."""

    field: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")]
    op: RuleOp
    value: Any = None

    @model_validator(mode="after")
    def _value_fits_op(self) -> Rule:
        if self.op in ("in", "not_in") and not isinstance(self.value, list):
            raise ValueError(f"op {self.op!r} needs a list value")
        if self.op in ("gt", "gte", "lt", "lte") and (
            isinstance(self.value, bool) or not isinstance(self.value, int | float | str)
        ):
            raise ValueError(f"op {self.op!r} needs a number or a string value")
        if self.op == "exists" and not isinstance(self.value, bool | None):
            raise ValueError("op 'exists' takes true, false or no value")
        if self.op in ("eq", "ne") and self.value is None:
            raise ValueError(f"op {self.op!r} needs a value")
        return self


class Schedule(_Frozen):
    """Opening hours per weekday in the buyer's zone. No hours at all means always open;
    with hours given, a weekday left out is closed all day."""

    hours: dict[Weekday, list[str]] = Field(default_factory=dict)
    closed_dates: list[date] = Field(default_factory=list)

    @field_validator("hours")
    @classmethod
    def _ranges(cls, hours: dict[Weekday, list[str]]) -> dict[Weekday, list[str]]:
        for day, ranges in hours.items():
            for text in ranges:
                found = _HOURS.match(text)
                if found is None:
                    raise ValueError(f"{day}: {text!r} is not HH:MM-HH:MM")
                opens, closes = text.split("-")
                if closes <= opens:
                    raise ValueError(f"{day}: {text!r} closes before it opens")
        return hours


class ScoreBand(_Frozen):
    min: Annotated[int, Field(ge=0, le=100)]
    max: Annotated[int, Field(ge=0, le=100)] = 100
    adjust: float

    @model_validator(mode="after")
    def _ordered(self) -> ScoreBand:
        if self.max < self.min:
            raise ValueError("max is below min")
        return self


class Pricing(_Frozen):
    """Adjustments added to the base price; every matching one applies."""

    states: dict[str, float] = Field(default_factory=dict)
    channels: dict[Channel, float] = Field(default_factory=dict)
    score_bands: list[ScoreBand] = Field(default_factory=list)

    @field_validator("states")
    @classmethod
    def _known_states(cls, states: dict[str, float]) -> dict[str, float]:
        _check_states(states)
        return states


def _check_states(states: Iterable[str]) -> None:
    unknown = sorted(set(states) - US_STATES)
    if unknown:
        raise ValueError(f"unknown US state code(s): {', '.join(unknown)}")


class Buyer(_Frozen):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    name: Annotated[str, Field(min_length=1)]
    status: Literal["active", "paused"] = "active"
    verticals: Annotated[list[str], Field(min_length=1)]
    channels: list[Channel] = Field(default_factory=lambda: list(CHANNELS))
    states: list[str] = Field(default_factory=list, description="Empty means every state")
    postal_codes: list[Annotated[str, Field(pattern=r"^\d{1,5}$")]] = Field(
        default_factory=list, description="Full ZIPs or ZIP prefixes; empty means any"
    )
    min_score: Annotated[int, Field(ge=0, le=100)] = 0
    rules: list[Rule] = Field(default_factory=list)
    line_types: list[str] = Field(
        default_factory=list, description="phonenumbers line types accepted; empty means any"
    )
    max_lead_age_s: Annotated[int, Field(gt=0)] | None = None
    schedule: Schedule = Field(default_factory=Schedule)
    accept_after_hours: bool = Field(
        default=False, description="Take forms, clicks and trials while closed; never calls"
    )
    price: Annotated[float, Field(gt=0)]
    pricing: Pricing = Field(default_factory=Pricing)
    priority: Annotated[int, Field(ge=0, description="Lower is preferred")] = 100
    weight: Annotated[int, Field(ge=1, description="Share under weighted_round_robin")] = 1
    quality_multiplier: Annotated[float, Field(gt=0, description="Bid factor, highest_bid")] = 1.0
    exclusive_only: bool = False
    caps: Caps = Field(default_factory=Caps)
    timezone: str = "America/New_York"
    requires_consent: bool = False
    contact_by: list[ContactChannel] = Field(
        default_factory=list,
        description="How the buyer reaches the consumer. Each must be in the lead's"
        " consent.channels, under a consent that names the buyer; empty means not checked",
    )
    fields: list[ContactField] | None = Field(
        default=None, description="Contact fields written to the buyer topic; None means all"
    )
    return_window_h: Annotated[int, Field(ge=0)] = 72
    max_return_rate: Annotated[float, Field(ge=0, le=1)] = 1.0

    @field_validator("states")
    @classmethod
    def _known_states(cls, states: list[str]) -> list[str]:
        _check_states(states)
        return states

    @field_validator("timezone")
    @classmethod
    def _iana_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"not an IANA time zone: {name!r}") from exc
        return name


class VerticalPolicy(_Frozen):
    """How one vertical's leads are distributed."""

    max_buyers: Annotated[int, Field(ge=1, description="1 means exclusive")] = 1
    strategy: Strategy = "highest_bid"
    floor_price: Annotated[float, Field(ge=0)] = 0.0
    consent_max_age_days: Annotated[int, Field(gt=0)] | None = None


DEFAULT_POLICY = VerticalPolicy()


class BuyersConfig(_Frozen):
    verticals: dict[str, VerticalPolicy] = Field(default_factory=dict)
    buyers: list[Buyer]

    @model_validator(mode="after")
    def _unique_ids(self) -> BuyersConfig:
        seen: set[str] = set()
        for buyer in self.buyers:
            if buyer.id in seen:
                raise ValueError(f"duplicate buyer id {buyer.id!r}")
            seen.add(buyer.id)
        return self

    def policy(self, vertical: str) -> VerticalPolicy:
        return self.verticals.get(vertical, DEFAULT_POLICY)
