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
