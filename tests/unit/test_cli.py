from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from router.cli import main

pytestmark = pytest.mark.unit

COMMANDS = [
    [],
    ["worker"],
    ["demo"],
    ["produce"],
    ["topics"],
    ["topics", "create"],
    ["topics", "export"],
    ["buyers"],
    ["buyers", "show"],
    ["buyers", "apply"],
    ["buyers", "pause"],
    ["buyers", "resume"],
    ["suppress"],
    ["explain"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "router")
def test_help_works_everywhere(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_buyers_show_prints_every_buyer() -> None:
    result = CliRunner().invoke(main, ["buyers", "show", "deploy/buyers.example.yaml"])
    assert result.exit_code == 0, result.output
    assert "backstop" in result.output and "8 buyers" in result.output


def test_buyers_show_refuses_a_bad_file_naming_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "buyers.yaml"
    bad.write_text(
        "buyers:\n  - id: acme\n    name: Acme\n    verticals: [mortgage]\n    price: -3\n"
    )
    result = CliRunner().invoke(main, ["buyers", "show", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:5: buyer 'acme', field 'price'" in result.output


def test_topics_export_matches_the_committed_contracts(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["topics", "export", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for generated in tmp_path.rglob("*.json"):
        committed = Path("topics") / generated.relative_to(tmp_path)
        assert committed.read_text() == generated.read_text(), committed


def test_buyers_apply_refuses_a_bad_file_with_every_problem_before_any_io(tmp_path: Path) -> None:
    bad = tmp_path / "buyers.yaml"
    bad.write_text(
        "buyers:\n  - id: acme\n    name: Acme\n    verticals: [mortgage]\n    price: -3\n"
        "  - id: beta\n    name: Beta\n    verticals: []\n    price: 5\n"
    )
    # An unroutable broker: the file must be refused before anything connects.
    result = CliRunner().invoke(main, ["buyers", "apply", str(bad), "--bootstrap", "192.0.2.1:1"])
    assert result.exit_code == 2
    assert f"{bad}:5: buyer 'acme', field 'price'" in result.output
    assert f"{bad}:8: buyer 'beta', field 'verticals'" in result.output


@pytest.mark.parametrize(
    "args",
    [[], ["--phone", "2125550123", "--email", "a@example.com"], ["--phone", "12"]],
    ids=["neither", "both", "invalid"],
)
def test_suppress_refuses_bad_input_before_any_io(args: list[str]) -> None:
    result = CliRunner().invoke(main, ["suppress", *args, "--bootstrap", "192.0.2.1:1"])
    assert result.exit_code == 2
    assert result.output.startswith("error: ")
