"""Seeded, realistic capture traffic for the intake topics: valid leads and every way they go wrong.

Pure: no Kafka, no wall clock, no global random state. The same `(count, seed, base_time, mix)`
always yields byte-identical events, so a failing load test can be replayed exactly.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import random
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Generic, Literal, NamedTuple, TypeVar

import orjson
import phonenumbers

from router.contract import CHANNELS, Channel

Kind = Literal["valid", "invalid", "duplicate", "malformed"]
KINDS: tuple[Kind, ...] = ("valid", "invalid", "duplicate", "malformed")

BUYER_IDS: tuple[str, ...] = (
    "acme-auto",
    "bluesky-mortgage",
    "brightpath-edu",
    "homepro-east",
    "cloudco-sales",
)
PUBLISHER_IDS: tuple[str, ...] = tuple(f"pub-{n}" for n in range(1, 9))

CHANNEL_WEIGHTS: tuple[tuple[Channel, float], ...] = (
    ("form", 0.45),
    ("call", 0.20),
    ("click", 0.20),
    ("trial", 0.15),
)
LEAD_VERTICALS: tuple[str, ...] = ("auto_insurance", "mortgage", "education", "home_services")
LEAD_VERTICAL_WEIGHTS: tuple[float, ...] = (0.35, 0.25, 0.2, 0.2)
TRIAL_VERTICALS: tuple[str, ...] = ("saas",)

# Notes: why an event is the way it is. Valid events only carry STATE_MISMATCH (the state
# contradicts the ZIP on purpose, a data-quality flag rather than a contract violation).
STATE_MISMATCH = "state_mismatch"


_T = TypeVar("_T")


class _Weighted(Generic[_T]):
    """`random.choices` with the cumulative weights computed once, not on every draw."""

    def __init__(self, pairs: Iterable[tuple[_T, float]]) -> None:
        items, weights = zip(*pairs, strict=True)
        self.items: tuple[_T, ...] = items
        self.cum = tuple(itertools.accumulate(weights))
        self.total = self.cum[-1]
        self.hi = len(self.items) - 1

    def pick(self, rng: random.Random) -> _T:
        return self.items[bisect.bisect(self.cum, rng.random() * self.total, 0, self.hi)]


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_STATES_50_DC = frozenset(
    _words(
        "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH "
        "NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY"
    )
)


@dataclass(frozen=True)
class Mix:
    """Fractions of each kind of event; they must add up to 1."""

    valid: float = 0.80
    invalid: float = 0.07
    duplicate: float = 0.08
    malformed: float = 0.05

    def __post_init__(self) -> None:
        weights = self.weights()
        if any(w < 0 for w in weights):
            raise ValueError(f"mix fractions must be >= 0: {self}")
        if abs(sum(weights) - 1.0) > 1e-6:
            raise ValueError(f"mix fractions must sum to 1, got {sum(weights):.6f}")

    def weights(self) -> tuple[float, float, float, float]:
        """In the order of `KINDS`."""
        return (self.valid, self.invalid, self.duplicate, self.malformed)


DEFAULT_MIX = Mix()


@dataclass(frozen=True)
class SyntheticEvent:
    channel: Channel
    topic: str
    key: bytes | None
    payload: bytes
    kind: Kind
    event_id: str | None
    note: str | None = None
    """valid/duplicate: STATE_MISMATCH or None; invalid and malformed: which defect."""
    duplicate_of: str | None = None
    """For duplicates: event_id of the earlier valid event with the same consumer."""


class _Place(NamedTuple):
    zip_code: str
    city: str
    state: str
    area_codes: tuple[str, ...]


@dataclass(frozen=True)
class _Person:
    """A consumer: what a duplicate resubmits."""

    first_name: str | None
    last_name: str | None
    email: str | None
    phone: int | None  # 10-digit national number
    place: _Place | None
    state: str | None  # as reported, which may contradict place on purpose
    company: str | None
    vertical: str
    channel: Channel
    event_id: str

    @property
    def note(self) -> str | None:
        if self.place is not None and self.state != self.place.state:
            return STATE_MISMATCH
        return None


@functools.cache
def _us_area_code(code: str) -> bool:
    number = phonenumbers.PhoneNumber(country_code=1, national_number=int(code + "2345678"))
    return phonenumbers.region_code_for_number(number) == "US" and phonenumbers.is_valid_number(
        number
    )


@functools.cache
def _places() -> tuple[_Place, ...]:
    """Active standard ZIPs in the 50 states and DC that have a dialable US area code."""
    import zipcodes  # imported lazily: loading its data set takes about half a second

    places = []
    for row in zipcodes.list_all():
        if not row["active"] or row["zip_code_type"] != "STANDARD":
            continue
        if row["state"] not in _STATES_50_DC:
            continue
        codes = tuple(c for c in row["area_codes"] if _us_area_code(c))
        if codes:
            places.append(_Place(row["zip_code"], row["city"], row["state"], codes))
    places.sort()
    return tuple(places)


_FIRST_NAMES = _words(
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara "
    "Richard Susan Joseph Jessica Thomas Sarah Carlos Maria Wei Mei Aisha Omar Priya Raj Hiroshi "
    "Yuki Olga Dmitri Fatima Kwame Ngozi Sofia Mateo Camila Liam Emma Noah Olivia Jamal Keisha "
    "Connor Siobhan Minh Linh"
)
_LAST_NAMES = _words(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez "
    "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Nguyen Patel Kim Chen Wang "
    "Okafor Mensah Kowalski Ivanova O'Brien Murphy Rossi Schmidt Cohen Yamamoto Singh Khan "
    "Abdullah Washington"
)
_EMAIL_DOMAINS = _Weighted(
    (
        ("gmail.com", 0.45),
        ("yahoo.com", 0.15),
        ("outlook.com", 0.08),
        ("hotmail.com", 0.08),
        ("icloud.com", 0.08),
        ("aol.com", 0.05),
        ("comcast.net", 0.04),
        ("att.net", 0.03),
        ("protonmail.com", 0.02),
        ("msn.com", 0.02),
    )
)
_STREETS = (
    "Main St",
    "Oak Ave",
    "Maple Dr",
    "Cedar Ln",
    "Elm St",
    "Park Blvd",
    "Washington Ave",
    "Lakeview Rd",
    "Hillcrest Dr",
    "Sunset Blvd",
    "2nd St",
    "Pine Ct",
)
_COMPANIES = (
    "Northwind Traders",
    "Globex",
    "Initech",
    "Umbrella Logistics",
    "Stark Analytics",
    "Wayne Fintech",
    "Hooli",
    "Pied Piper",
    "Vandelay Industries",
    "Soylent Foods",
    "Cyberdyne Labs",
    "Tyrell Biotech",
)
_USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.0 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Linux; Android 14; SM-S918U) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
)
# Documentation address ranges (RFC 5737): realistic-looking, never anyone's real address.
_IP_PREFIXES = ("192.0.2.", "198.51.100.", "203.0.113.")
_SITES = {
    "auto_insurance": ("quickautoquotes.example", "/quote/auto"),
    "mortgage": ("homeloanrates.example", "/rates/compare"),
    "education": ("findyourdegree.example", "/programs"),
    "home_services": ("localpros.example", "/get-estimate"),
    "saas": ("cloudco.example", "/signup"),
}
_KEYWORDS = {
    "auto_insurance": ("cheap car insurance", "auto insurance quotes", "full coverage insurance"),
    "mortgage": ("refinance rates", "30 year mortgage rates", "first time home buyer"),
    "education": ("online nursing degree", "mba online", "accredited online colleges"),
    "home_services": ("roof repair near me", "hvac replacement cost", "solar panels cost"),
    "saas": ("crm software", "sales pipeline tool", "free crm"),
}
_BUYERS_BY_VERTICAL = {
    "auto_insurance": ("acme-auto",),
    "mortgage": ("bluesky-mortgage",),
    "education": ("brightpath-edu",),
    "home_services": ("homepro-east",),
    "saas": ("cloudco-sales",),
}
_CONSENT_TEXT = (
    "By clicking Submit, I agree to be contacted by {who} at the number and email provided, "
    "including by autodialed or prerecorded calls and texts, about {what}. Consent is not a "
    "condition of purchase. Msg & data rates may apply."
)
_WHAT = {
    "auto_insurance": "auto insurance quotes",
    "mortgage": "mortgage and refinance offers",
    "education": "education programs",
    "home_services": "home improvement services",
    "saas": "products and services",
}
_CHANNELS = _Weighted(CHANNEL_WEIGHTS)
_LEAD_VERTICALS = _Weighted(zip(LEAD_VERTICALS, LEAD_VERTICAL_WEIGHTS, strict=True))
_DRIVERS = _Weighted(((1, 0.5), (2, 0.35), (3, 0.1), (4, 0.05)))
_PHONE_STYLE = _Weighted(
    (
        ("e164", 0.35),
        ("parens", 0.2),
        ("dots", 0.1),
        ("dashes", 0.2),
        ("digits", 0.1),
        ("one", 0.05),
    )
)
_TOLL_FREE = ("800", "833", "844", "855", "866", "877", "888")
_CREDIT = ("excellent", "good", "fair", "poor")
_VEHICLES = (
    ("Toyota", "Camry"),
    ("Honda", "Civic"),
    ("Ford", "F-150"),
    ("Chevrolet", "Silverado"),
    ("Tesla", "Model 3"),
    ("Nissan", "Altima"),
    ("Hyundai", "Elantra"),
    ("Subaru", "Outback"),
    ("Jeep", "Wrangler"),
    ("BMW", "3 Series"),
)


def _attributes(rng: random.Random, vertical: str, year: int) -> dict[str, Any]:
    if vertical == "auto_insurance":
        make, model = rng.choice(_VEHICLES)
        return {
            "vehicle_year": rng.randint(year - 20, year + 1),
            "vehicle_make": make,
            "vehicle_model": model,
            "currently_insured": rng.random() < 0.7,
            "drivers": _DRIVERS.pick(rng),
            "credit_rating": rng.choice(_CREDIT),
        }
    if vertical == "mortgage":
        value = rng.randrange(120_000, 1_500_000, 5_000)
        return {
            "loan_purpose": rng.choice(("purchase", "refinance", "cash_out_refinance")),
            "property_value": value,
            "loan_amount": rng.randrange(50_000, int(value * 0.95), 5_000),
            "property_type": rng.choice(("single_family", "condo", "townhouse", "multi_family")),
            "credit_rating": rng.choice(_CREDIT),
            "veteran": rng.random() < 0.1,
        }
    if vertical == "education":
        return {
            "degree_level": rng.choice(
                ("certificate", "associate", "bachelor", "master", "doctorate")
            ),
            "area_of_study": rng.choice(
                ("nursing", "business", "computer_science", "psychology", "criminal_justice")
            ),
            "online_only": rng.random() < 0.6,
            "high_school_grad_year": rng.randint(year - 40, year),
            "military_affiliated": rng.random() < 0.08,
        }
    if vertical == "home_services":
        return {
            "project_type": rng.choice(
                ("roofing", "hvac", "solar", "plumbing", "windows", "kitchen_remodel")
            ),
            "homeowner": rng.random() < 0.85,
            "timeframe": rng.choice(("immediately", "within_1_month", "1_3_months", "flexible")),
            "credit_rating": rng.choice(_CREDIT),
        }
    return {
        "company_size": rng.choice(("1-10", "11-50", "51-200", "201-1000", "1000+")),
        "role": rng.choice(("founder", "sales_manager", "engineer", "operations", "marketing")),
        "industry": rng.choice(("software", "retail", "healthcare", "finance", "manufacturing")),
        "seats": rng.choice((1, 3, 5, 10, 25, 50)),
    }


class _Generator:
    def __init__(self, seed: int, base_time: datetime) -> None:
        self.rng = random.Random(seed)
        self.base_time = base_time
        self.places = _places()
        # Duplicates come from recent consumers; a bounded ring keeps memory flat on long runs.
        self.recent: list[_Person] = []
        self.recent_cap = 1000
        self.recent_next = 0

    # -- building blocks ---------------------------------------------------------------------

    def event_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def timestamp(self, at: datetime) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.15:
            at = at.astimezone(timezone(timedelta(hours=rng.choice((-4, -5, -6, -7, -8)))))
        else:
            at = at.astimezone(UTC)
        text = at.isoformat(timespec="milliseconds")
        if roll > 0.9:
            text = text.replace("+00:00", "Z")
        return text

    def occurred(self) -> datetime:
        # Most leads are captured moments before they reach Kafka; some arrive late.
        if self.rng.random() < 0.9:
            return self.base_time - timedelta(milliseconds=self.rng.randint(0, 200))
        return self.base_time - timedelta(milliseconds=self.rng.randint(2_000, 20 * 60_000))

    def place(self) -> _Place:
        return self.rng.choice(self.places)

    def phone(self, place: _Place | None) -> int:
        rng = self.rng
        codes = place.area_codes if place else self.rng.choice(self.places).area_codes
        for _ in range(20):
            exchange = rng.randint(200, 999)
            if exchange % 100 == 11:  # N11 codes are service numbers, not subscriber exchanges
                continue
            national = int(f"{rng.choice(codes)}{exchange}{rng.randint(0, 9999):04d}")
            number = phonenumbers.PhoneNumber(country_code=1, national_number=national)
            # Scoped to the US region: much cheaper than searching every +1 region.
            if phonenumbers.is_valid_number_for_region(number, "US"):
                return national
        # All candidate area codes passed `_us_area_code`, so this needs a freak run of rejects.
        return 2_122_345_678

    def format_phone(self, national: int) -> str:
        digits = f"{national:010d}"
        a, e, n = digits[:3], digits[3:6], digits[6:]
        style = _PHONE_STYLE.pick(self.rng)
        if style == "e164":
            return f"+1{digits}"
        if style == "parens":
            return f"({a}) {e}-{n}"
        if style == "dots":
            return f"{a}.{e}.{n}"
        if style == "dashes":
            return f"{a}-{e}-{n}"
        return digits if style == "digits" else f"1{digits}"

    def email(self, first: str, last: str) -> str:
        rng = self.rng
        first_l, last_l = first.lower().replace("'", ""), last.lower().replace("'", "")
        local = rng.choice(
            (
                f"{first_l}.{last_l}",
                f"{first_l}{last_l}",
                f"{first_l[0]}{last_l}",
                f"{first_l}_{last_l}",
                f"{first_l}{last_l[0]}",
            )
        )
        if rng.random() < 0.5:
            local += str(rng.randint(1, 99))
        domain = _EMAIL_DOMAINS.pick(rng)
        address = f"{local}@{domain}"
        if rng.random() < 0.1:
            address = address.upper() if rng.random() < 0.2 else address.title()
        return address

    def source(self, channel: Channel, vertical: str) -> dict[str, Any]:
        rng = self.rng
        host, path = _SITES[vertical]
        src: dict[str, Any] = {
            "publisher_id": rng.choice(PUBLISHER_IDS),
            "campaign_id": f"cmp-{vertical.replace('_', '-')}-{rng.randint(1, 40):03d}",
        }
        if rng.random() < 0.6:
            src["sub_id"] = f"sub-{rng.randint(1, 500)}"
        if channel != "call":
            src["page_url"] = f"https://{host}{path}?ref={rng.randint(1000, 9999)}"
            src["ip"] = f"{rng.choice(_IP_PREFIXES)}{rng.randint(1, 254)}"
            src["user_agent"] = rng.choice(_USER_AGENTS)
        return src

    def consent(self, vertical: str, occurred_at: datetime) -> dict[str, Any]:
        rng = self.rng
        if rng.random() < 0.8:
            sellers = ["*"]
            who = "our marketing partners"
        else:
            own = _BUYERS_BY_VERTICAL[vertical]
            others = [b for b in BUYER_IDS if b not in own]
            sellers = [*own, *rng.sample(others, rng.randint(0, 1))]
            who = ", ".join(sellers)
        channels = [c for c in ("call", "sms", "email") if rng.random() < 0.7] or ["call"]
        if rng.random() < 0.5:
            certificate = f"https://cert.trustedform.com/{self.rng.getrandbits(160):040x}"
        else:
            certificate = str(uuid.UUID(int=rng.getrandbits(128), version=4)).upper()
        return {
            "text": _CONSENT_TEXT.format(who=who, what=_WHAT[vertical]),
            "captured_at": self.timestamp(occurred_at - timedelta(seconds=rng.randint(1, 30))),
            "certificate_id": certificate,
            "sellers": sellers,
            "channels": channels,
        }

    def person(self, channel: Channel, vertical: str, event_id: str) -> _Person:
        rng = self.rng
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        if channel == "form":
            roll = rng.random()
            # 75% give both, 12% only an email, 13% only a phone.
            has_phone, has_email = roll < 0.75 or roll >= 0.87, roll < 0.87
            has_name, has_place = True, True
        elif channel == "call":
            has_phone, has_email = True, rng.random() < 0.1
            has_name, has_place = rng.random() < 0.5, rng.random() < 0.6
        elif channel == "click":
            has_email = rng.random() < 0.7
            has_phone = rng.random() < 0.6 or not has_email
            has_name, has_place = rng.random() < 0.7, rng.random() < 0.5
        else:
            has_phone, has_email = rng.random() < 0.3, True
            has_name, has_place = rng.random() < 0.9, rng.random() < 0.4
        place = self.place() if has_place or has_phone else None
        state = place.state if place else None
        if place is not None and rng.random() < 0.02:
            state = rng.choice(sorted(_STATES_50_DC - {place.state}))
        return _Person(
            first_name=first if has_name else None,
            last_name=last if has_name else None,
            email=self.email(first, last) if has_email else None,
            phone=self.phone(place) if has_phone else None,
            place=place if has_place else None,
            state=state if has_place else None,
            company=rng.choice(_COMPANIES) if channel == "trial" and rng.random() < 0.8 else None,
            vertical=vertical,
            channel=channel,
            event_id=event_id,
        )

    def contact(self, person: _Person) -> dict[str, Any]:
        rng = self.rng
        contact: dict[str, Any] = {}
        if person.first_name:
            contact["first_name"] = person.first_name
            contact["last_name"] = person.last_name
        if person.email:
            contact["email"] = person.email
        if person.phone:
            contact["phone"] = self.format_phone(person.phone)
        if person.place:
            contact["postal_code"] = person.place.zip_code
            contact["state"] = person.state
            contact["city"] = person.place.city
            if rng.random() < 0.4:
                contact["address"] = f"{rng.randint(1, 9999)} {rng.choice(_STREETS)}"
        if person.company:
            contact["company"] = person.company
        return contact

    def event(self, channel: Channel, person: _Person | None, vertical: str) -> dict[str, Any]:
        """A contract-valid event; `person` None means an anonymous click."""
        rng = self.rng
        occurred_at = self.occurred()
        event_id = person.event_id if person else self.event_id()
        ev: dict[str, Any] = {
            "event_id": event_id,
            "occurred_at": self.timestamp(occurred_at),
            "vertical": vertical,
            "source": self.source(channel, vertical),
        }
        if person is not None:
            ev["contact"] = self.contact(person)
        elif rng.random() < 0.5:
            ev["contact"] = {}
        if channel != "click" and rng.random() < 0.7:
            ev["consent"] = self.consent(vertical, occurred_at)
        ev["attributes"] = _attributes(rng, vertical, self.base_time.year)
        if channel == "call":
            caller = person.phone if person and person.phone else self.phone(None)
            ev["call"] = {
                "call_id": f"CA{rng.getrandbits(128):032x}",
                "caller_phone": f"+1{caller:010d}",
                "dialed_number": f"+1{rng.choice(_TOLL_FREE)}{rng.randint(2_000_000, 9_999_999)}",
                "duration_seconds": rng.randint(5, 1800),
            }
        elif channel == "click":
            host, path = _SITES[vertical]
            ev["click"] = {
                "ad_id": f"ad-{rng.randint(10_000, 99_999)}",
                "keyword": rng.choice(_KEYWORDS[vertical]),
                "url": f"https://{host}{path}?gclid={rng.getrandbits(64):016x}",
            }
        elif channel == "trial":
            ev["trial"] = {
                "product": rng.choice(("cloudco-crm", "cloudco-helpdesk", "cloudco-analytics")),
                "plan": rng.choice(("free", "starter", "pro", "enterprise")),
            }
        if rng.random() < 0.03:
            ev["utm"] = {
                "source": rng.choice(("google", "facebook", "bing", "tiktok")),
                "medium": rng.choice(("cpc", "social", "email")),
                "campaign": f"{vertical}-{rng.choice(('spring', 'summer', 'fall', 'winter'))}",
            }
        return ev

    def vertical(self, channel: Channel) -> str:
        if channel == "trial":
            return self.rng.choice(TRIAL_VERTICALS)
        return _LEAD_VERTICALS.pick(self.rng)

    def channel(self) -> Channel:
        return _CHANNELS.pick(self.rng)

    def remember(self, person: _Person) -> None:
        if len(self.recent) < self.recent_cap:
            self.recent.append(person)
        else:
            self.recent[self.recent_next] = person
            self.recent_next = (self.recent_next + 1) % self.recent_cap

    # -- the four kinds ----------------------------------------------------------------------

    def valid(self) -> SyntheticEvent:
        channel = self.channel()
        vertical = self.vertical(channel)
        person: _Person | None = None
        if channel != "click" or self.rng.random() >= 0.4:
            person = self.person(channel, vertical, self.event_id())
            self.remember(person)
        ev = self.event(channel, person, vertical)
        return _emit(channel, ev, "valid", person.note if person else None)

    def duplicate(self) -> SyntheticEvent:
        rng = self.rng
        if not self.recent:
            return self.valid()
        original = rng.choice(self.recent)
        channel = original.channel
        if rng.random() < 0.3 and original.vertical in LEAD_VERTICALS:
            options: tuple[Channel, ...] = (
                ("form", "click", "call") if original.phone else ("form", "click")
            )
            channel = rng.choice(options)
        person = _Person(
            first_name=original.first_name,
            last_name=original.last_name,
            email=original.email,
            phone=original.phone,
            place=original.place,
            state=original.state,
            company=original.company,
            vertical=original.vertical,
            channel=channel,
            event_id=self.event_id(),
        )
        ev = self.event(channel, person, person.vertical)
        return _emit(channel, ev, "duplicate", person.note, duplicate_of=original.event_id)

    def invalid(self) -> SyntheticEvent:
        rng = self.rng
        channel = self.channel()
        vertical = self.vertical(channel)
        person = self.person(channel, vertical, self.event_id())
        ev = self.event(channel, person, vertical)
        defects = [name for name, (channels, _) in _DEFECTS.items() if channel in channels]
        defect = rng.choice(defects)
        _DEFECTS[defect][1](self, ev)
        return _emit(channel, ev, "invalid", defect)

    def malformed(self) -> SyntheticEvent:
        rng = self.rng
        channel = self.channel()
        variant = rng.choice(_MALFORMED)
        event_id: str | None = None
        if variant in ("truncated_json", "invalid_utf8", "json_array"):
            vertical = self.vertical(channel)
            event_id = self.event_id()
            person = None if channel == "click" else self.person(channel, vertical, event_id)
            ev = self.event(channel, person, vertical)
            ev["event_id"] = event_id
            raw = orjson.dumps(ev)
            if variant == "truncated_json":
                payload = raw[: rng.randint(1, len(raw) - 1)]
            elif variant == "invalid_utf8":
                marker = b'"event_id":"'
                at = raw.index(marker) + len(marker)
                payload = (
                    raw[:at] + rng.choice((b"\xc3\x28", b"\xff\xfe", b"\xed\xa0\x80")) + raw[at:]
                )
            else:
                payload = b"[" + raw + b"]"
        elif variant == "random_bytes":
            payload = b"\x00" + rng.randbytes(rng.randint(16, 512))
        elif variant == "deep_nesting":
            payload = b'{"a":[' * rng.randint(600, 2000) + b'"x"'
        elif variant == "huge_string":
            payload = orjson.dumps("A" * 100_000 + rng.choice(("", "!", "?")))
        else:
            payload = rng.choice((b"", b"null", b"42", b"true", b"\n"))
        return SyntheticEvent(
            channel=channel,
            topic=f"intent.{channel}",
            key=event_id.encode() if event_id else None,
            payload=payload,
            kind="malformed",
            event_id=event_id,
            note=variant,
        )


def _emit(
    channel: Channel,
    ev: dict[str, Any],
    kind: Kind,
    note: str | None,
    duplicate_of: str | None = None,
) -> SyntheticEvent:
    event_id = ev.get("event_id")
    if not isinstance(event_id, str):
        event_id = None
    return SyntheticEvent(
        channel=channel,
        topic=f"intent.{channel}",
        key=event_id.encode() if event_id else None,
        payload=orjson.dumps(ev),
        kind=kind,
        event_id=event_id,
        note=note,
        duplicate_of=duplicate_of,
    )


def _invalid_phone(g: _Generator, ev: dict[str, Any]) -> None:
    bad = g.rng.choice(("555-0000", "12", "(000) 123-4567", "123-456-7890", "+1 555 123"))
    contact = ev.setdefault("contact", {})
    contact["phone"] = bad
    # Without a usable email as well, the bad phone is the only way to reach the consumer.
    contact.pop("email", None)
    if "call" in ev:
        ev["call"]["caller_phone"] = bad


def _invalid_email(g: _Generator, ev: dict[str, Any]) -> None:
    contact = ev.setdefault("contact", {})
    contact["email"] = g.rng.choice(
        ("bob@", "bob@gmail", "bob@@gmail.com", "bob.gmail.com", "bob smith@gmail.com")
    )
    contact.pop("phone", None)


def _bad_zip(g: _Generator, ev: dict[str, Any]) -> None:
    ev.setdefault("contact", {})["postal_code"] = g.rng.choice(("ABCDE", "1234", "123456", "9021O"))


def _missing_event_id(g: _Generator, ev: dict[str, Any]) -> None:
    del ev["event_id"]


def _bad_occurred_at(g: _Generator, ev: dict[str, Any]) -> None:
    naive = g.base_time.replace(tzinfo=None).isoformat(timespec="seconds")
    ev["occurred_at"] = g.rng.choice(("yesterday", naive, True, {"ts": naive}, ""))


def _bad_vertical(g: _Generator, ev: dict[str, Any]) -> None:
    ev["vertical"] = g.rng.choice(("Auto Insurance", "", "mortgage!", "9lives"))


def _missing_publisher(g: _Generator, ev: dict[str, Any]) -> None:
    del ev["source"]["publisher_id"]


def _unreachable_form(g: _Generator, ev: dict[str, Any]) -> None:
    contact = ev.setdefault("contact", {})
    contact.pop("phone", None)
    contact.pop("email", None)


def _trial_without_email(g: _Generator, ev: dict[str, Any]) -> None:
    ev.setdefault("contact", {}).pop("email", None)


def _call_without_call(g: _Generator, ev: dict[str, Any]) -> None:
    del ev["call"]


_Defect = tuple[tuple[Channel, ...], Callable[[_Generator, dict[str, Any]], None]]
_DEFECTS: dict[str, _Defect] = {
    "invalid_phone": (("form", "call", "click"), _invalid_phone),
    "invalid_email": (("form", "click", "trial"), _invalid_email),
    "bad_zip": (("form", "call", "trial"), _bad_zip),
    "missing_event_id": (CHANNELS, _missing_event_id),
    "bad_occurred_at": (CHANNELS, _bad_occurred_at),
    "bad_vertical": (CHANNELS, _bad_vertical),
    "missing_publisher_id": (CHANNELS, _missing_publisher),
    "unreachable_form": (("form",), _unreachable_form),
    "trial_without_email": (("trial",), _trial_without_email),
    "call_without_call": (("call",), _call_without_call),
}
_MALFORMED = (
    "random_bytes",
    "truncated_json",
    "invalid_utf8",
    "json_array",
    "deep_nesting",
    "huge_string",
    "not_an_object",
)


def generate(
    count: int,
    seed: int = 0,
    *,
    base_time: datetime,
    mix: Mix = DEFAULT_MIX,
    rate: float | None = None,
) -> Iterator[SyntheticEvent]:
    """Yield `count` events; `base_time` (timezone-aware) is "now" for the generated traffic.

    With `rate` (events/s), "now" advances by 1/rate per event, so traffic produced at that
    pace carries capture times just before it is produced, as live capture does.
    """
    if count < 0:
        raise ValueError("count must be >= 0")
    if base_time.tzinfo is None or base_time.utcoffset() is None:
        raise ValueError("base_time must be timezone-aware")
    return _generate(count, seed, base_time, mix, rate)


def _generate(
    count: int, seed: int, base_time: datetime, mix: Mix, rate: float | None
) -> Iterator[SyntheticEvent]:
    g = _Generator(seed, base_time)
    makers = {
        "valid": g.valid,
        "invalid": g.invalid,
        "duplicate": g.duplicate,
        "malformed": g.malformed,
    }
    kinds = _Weighted(zip(KINDS, mix.weights(), strict=True))
    for i in range(count):
        if rate:
            g.base_time = base_time + timedelta(seconds=i / rate)
        kind = kinds.pick(g.rng)
        yield makers[kind]()
