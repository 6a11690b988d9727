from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from router.config_file import ConfigError, Problem, load_buyers, parse_buyers

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "buyers.example.yaml"

# Line numbers in the tests below count from the `buyers:` line as line 1.
TWO_BUYERS = """\
buyers:
  - id: acme-auto
    name: Acme Auto
    verticals: [auto_insurance]
    price: 40
    caps:
      hourly: 10
      daily: 50
  - id: coastal
    name: Coastal Loans
    verticals: [mortgage]
    states: [CA, NV]
    price: 80
    timezone: America/Los_Angeles
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "buyers.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def refused(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_buyers(path)
    return info.value


def test_example_file_loads() -> None:
    buyers = load_buyers(EXAMPLE)
    assert len(buyers) >= 8
    assert len({b.id for b in buyers}) == len(buyers)
    verticals = {v for b in buyers for v in b.verticals}
    assert {"auto_insurance", "mortgage", "education", "home_services", "saas"} <= verticals
    assert any(b.requires_consent for b in buyers)
    assert any(b.contact_by for b in buyers)
    assert any(b.caps.daily is not None and b.caps.daily <= 50 for b in buyers)
    assert len({b.timezone for b in buyers}) >= 4


def test_valid_file_loads_in_order(tmp_path: Path) -> None:
    buyers = load_buyers(write(tmp_path, TWO_BUYERS))
    assert [b.id for b in buyers] == ["acme-auto", "coastal"]
    assert buyers[0].caps.daily == 50
    assert buyers[1].states == ["CA", "NV"]


def test_empty_buyer_list_is_valid() -> None:
    assert parse_buyers("buyers: []\n") == ()


def test_negative_cap(tmp_path: Path) -> None:
    path = write(tmp_path, TWO_BUYERS.replace("daily: 50", "daily: -1"))
    err = refused(path)
    assert (err.path, err.line, err.buyer, err.field) == (str(path), 8, "acme-auto", "caps.daily")
    assert err.reason == "Input should be greater than or equal to 0"
    assert str(err) == (
        f"{path}:8: buyer 'acme-auto', field 'caps.daily': "
        "Input should be greater than or equal to 0"
    )


def test_unknown_state(tmp_path: Path) -> None:
    err = refused(write(tmp_path, TWO_BUYERS.replace("[CA, NV]", "[CA, XX]")))
    assert (err.line, err.buyer, err.field) == (12, "coastal", "states")
    assert "XX" in err.reason


def test_bad_timezone(tmp_path: Path) -> None:
    err = refused(write(tmp_path, TWO_BUYERS.replace("America/Los_Angeles", "Pacific/Nowhere")))
    assert (err.line, err.buyer, err.field) == (14, "coastal", "timezone")
    assert err.reason == "not an IANA time zone: 'Pacific/Nowhere'"


def test_an_unknown_contact_channel_is_refused(tmp_path: Path) -> None:
    text = TWO_BUYERS.replace("    price: 80\n", "    price: 80\n    contact_by: [call, fax]\n")
    err = refused(write(tmp_path, text))
    assert (err.line, err.buyer, err.field) == (14, "coastal", "contact_by.1")
    assert "'call', 'sms' or 'email'" in err.reason


def test_missing_price_points_at_the_buyer(tmp_path: Path) -> None:
    err = refused(write(tmp_path, TWO_BUYERS.replace("    price: 80\n", "")))
    assert (err.line, err.buyer, err.field) == (9, "coastal", "price")
    assert err.reason == "Field required"


def test_unknown_field(tmp_path: Path) -> None:
    err = refused(write(tmp_path, TWO_BUYERS.replace("price: 80", "prise: 80")))
    # `prise` is refused where it stands; the missing `price` is reported at the buyer's start.
    assert (err.line, err.buyer, err.field) == (9, "coastal", "price")
    assert Problem(13, "coastal", "prise", "Extra inputs are not permitted") in err.errors
    assert len(err.errors) == 2


def test_wrong_type_in_a_list(tmp_path: Path) -> None:
    err = refused(write(tmp_path, TWO_BUYERS.replace("[auto_insurance]", "[auto_insurance, 7]")))
    assert (err.line, err.buyer, err.field) == (4, "acme-auto", "verticals.1")


def test_unquoted_zip_is_refused(tmp_path: Path) -> None:
    zips = "    postal_codes:\n      - 02134\n"
    text = TWO_BUYERS.replace("    price: 80\n", "    price: 80\n" + zips)
    err = refused(write(tmp_path, text))
    assert (err.line, err.buyer, err.field) == (15, "coastal", "postal_codes.0")


def test_duplicate_ids(tmp_path: Path) -> None:
    err = refused(write(tmp_path, TWO_BUYERS.replace("id: coastal", "id: acme-auto")))
    assert (err.line, err.buyer, err.field) == (9, "acme-auto", "id")
    assert err.reason == "duplicate buyer id 'acme-auto' (first on line 2)"
    assert len(err.errors) == 1


def test_duplicate_key_inside_a_buyer(tmp_path: Path) -> None:
    err = refused(write(tmp_path, TWO_BUYERS.replace("price: 40\n", "price: 40\n    price: 4\n")))
    assert (err.line, err.buyer, err.field) == (6, "acme-auto", "price")
    assert err.reason == "duplicate key 'price' (first on line 5)"


def test_all_problems_are_kept_in_line_order(tmp_path: Path) -> None:
    text = TWO_BUYERS.replace("daily: 50", "daily: -1").replace("[CA, NV]", "[CA, XX]")
    err = refused(write(tmp_path, text))
    assert [(p.line, p.buyer, p.field) for p in err.errors] == [
        (8, "acme-auto", "caps.daily"),
        (12, "coastal", "states"),
    ]
    assert err.messages()[1].startswith(f"{tmp_path / 'buyers.yaml'}:12: buyer 'coastal', field")


def test_unreadable_buyer_id_is_none(tmp_path: Path) -> None:
    err = refused(write(tmp_path, TWO_BUYERS.replace("id: coastal", "id: [coastal]")))
    assert (err.line, err.buyer, err.field) == (9, None, "id")


def test_merge_keys_point_at_the_shared_value(tmp_path: Path) -> None:
    text = """\
    defaults: &defaults
      verticals: [mortgage]
      timezone: Mars/Olympus
    buyers:
      - <<: *defaults
        id: coastal
        name: Coastal Loans
        price: 80
    """
    err = refused(write(tmp_path, text))
    # The merged-in `defaults` key itself is also refused (extra field at the top level).
    assert Problem(1, None, "defaults", "Extra inputs are not permitted") in err.errors
    assert Problem(3, "coastal", "timezone", "not an IANA time zone: 'Mars/Olympus'") in err.errors


def test_yaml_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, TWO_BUYERS.replace("verticals: [mortgage]", "verticals: [mortgage"))
    err = refused(path)
    assert err.path == str(path)
    assert err.line == 12
    assert (err.buyer, err.field) == (None, None)
    assert err.reason.startswith("invalid YAML:")
    assert str(err).startswith(f"{path}:12: invalid YAML:")


def test_tab_indentation(tmp_path: Path) -> None:
    err = refused(write(tmp_path, "buyers:\n\t- id: x\n"))
    assert err.line == 2
    assert err.reason.startswith("invalid YAML:")


def test_two_documents_are_refused() -> None:
    with pytest.raises(ConfigError) as info:
        parse_buyers("buyers: []\n---\nbuyers: []\n", "b.yaml")
    assert (info.value.path, info.value.line) == ("b.yaml", 2)


@pytest.mark.parametrize(
    ("text", "line", "kind"),
    [
        ("- id: acme\n", 1, "list"),
        ("just a string\n", 1, "scalar"),
        ("# only a comment\n", 1, None),
        ("", 1, None),
    ],
)
def test_top_level_not_a_mapping(tmp_path: Path, text: str, line: int, kind: str | None) -> None:
    path = write(tmp_path, text)
    err = refused(path)
    assert (err.path, err.line, err.buyer, err.field) == (str(path), line, None, None)
    assert "'buyers'" in err.reason
    if kind:
        assert kind in err.reason


def test_missing_buyers_key(tmp_path: Path) -> None:
    path = write(tmp_path, "sellers: []\n")
    err = refused(path)
    assert (err.path, err.line, err.buyer, err.field) == (str(path), 1, None, "buyers")
    assert Problem(1, None, "sellers", "Extra inputs are not permitted") in err.errors


def test_buyers_not_a_list(tmp_path: Path) -> None:
    err = refused(write(tmp_path, "buyers:\n  acme: {}\n"))
    assert (err.line, err.buyer, err.field) == (1, None, "buyers")
    assert err.reason == "Input should be a valid list"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    err = refused(path)
    assert (err.path, err.line, err.buyer, err.field) == (str(path), None, None, None)
    assert str(err) == f"{path}: file not found"


def test_directory_is_refused(tmp_path: Path) -> None:
    err = refused(tmp_path)
    assert err.path == str(tmp_path)
    assert err.line is None


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "buyers.yaml"
    path.write_bytes(b"buyers: []\n# \xff\n")
    err = refused(path)
    assert err.path == str(path)
    assert "UTF-8" in err.reason


def test_parse_buyers_default_path() -> None:
    with pytest.raises(ConfigError, match=r"^<string>:1: "):
        parse_buyers("[]")
