from __future__ import annotations

import logging

import orjson
import pytest

from router.logs import JsonFormatter, logging_config

pytestmark = pytest.mark.unit


def test_one_json_object_per_line_with_extras() -> None:
    record = logging.LogRecord("router.decisions", logging.DEBUG, "f.py", 1, "decision", (), None)
    record.__dict__.update(event_id="e1", lead_id="l1", outcome="sold")
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = orjson.loads(line)
    assert parsed["msg"] == "decision" and parsed["level"] == "debug"
    assert (parsed["event_id"], parsed["lead_id"], parsed["outcome"]) == ("e1", "l1", "sold")


def test_debug_applies_to_the_router_not_to_libraries() -> None:
    config = logging_config("debug")
    assert config["loggers"]["router"]["level"] == "DEBUG"
    assert config["root"]["level"] == "INFO"
    assert logging_config("warning")["root"]["level"] == "WARNING"
