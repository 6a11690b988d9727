"""The public intake contract: what upstream capture services produce to `intent.<channel>`.

These models validate raw JSON; they are the source of the JSON Schemas in `topics/schemas/`.
Unknown fields are kept (`extra="allow"`), never rejected.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

Channel = Literal["form", "call", "click", "trial"]
CHANNELS: tuple[Channel, ...] = ("form", "call", "click", "trial")
ContactChannel = Literal["call", "sms", "email"]

NonEmpty = Annotated[str, Field(min_length=1, max_length=512)]
Text = Annotated[str, Field(max_length=4096)]


class _Open(BaseModel):
    """Frozen, and keeps fields the contract does not name."""

    model_config = ConfigDict(extra="allow", frozen=True)


class Source(_Open):
    publisher_id: NonEmpty
    campaign_id: Text | None = None
    sub_id: Text | None = None
    page_url: Text | None = None
    ip: Text | None = None
    user_agent: Text | None = None


class Contact(_Open):
    first_name: Text | None = None
    last_name: Text | None = None
    email: Text | None = None
    phone: Text | None = None
    postal_code: Text | None = None
    state: Text | None = None
    city: Text | None = None
    address: Text | None = None
    company: Text | None = None


class Consent(_Open):
    text: Text | None = None
    captured_at: AwareDatetime | None = None
    certificate_id: Text | None = None
    sellers: list[NonEmpty] = Field(default_factory=list, max_length=1000)
    channels: list[ContactChannel] = Field(default_factory=list)


class CallDetails(_Open):
    call_id: NonEmpty
    caller_phone: NonEmpty
    dialed_number: Text | None = None


class ClickDetails(_Open):
    ad_id: Text | None = None
    keyword: Text | None = None
    url: Text | None = None


class TrialDetails(_Open):
    product: NonEmpty
    plan: Text | None = None


class IntakeEvent(_Open):
    """Fields every channel shares."""

    event_id: Annotated[str, Field(min_length=1, max_length=200)]
    occurred_at: AwareDatetime
    vertical: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    source: Source
    contact: Contact = Field(default_factory=Contact)
    consent: Consent | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)


class FormEvent(IntakeEvent):
    @model_validator(mode="after")
    def _reachable(self) -> FormEvent:
        if not (self.contact.phone or self.contact.email):
            raise ValueError("a form lead needs contact.phone or contact.email")
        return self


class CallEvent(IntakeEvent):
    call: CallDetails


class ClickEvent(IntakeEvent):
    click: ClickDetails = Field(default_factory=ClickDetails)


class TrialEvent(IntakeEvent):
    trial: TrialDetails

    @model_validator(mode="after")
    def _has_email(self) -> TrialEvent:
        if not self.contact.email:
            raise ValueError("a trial signup needs contact.email")
        return self


INTAKE_MODELS: dict[Channel, type[IntakeEvent]] = {
    "form": FormEvent,
    "call": CallEvent,
    "click": ClickEvent,
    "trial": TrialEvent,
}
