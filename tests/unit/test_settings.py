from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from router.settings import Settings

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's or CI's own environment must not leak into these tests."""
    for name in list(os.environ):
        if name.startswith("ROUTER_") or name == "KAFKA_BOOTSTRAP_SERVERS":
            monkeypatch.delenv(name)


def test_defaults_are_sane() -> None:
    s = Settings()
    assert s.bootstrap_servers == "localhost:9092"
    assert s.app_id == "lead-router"
    assert s.partitions >= 1
    assert s.replication_factor == 1
    assert s.dedup_window_s == 86_400
    assert s.create_topics is True
    assert s.buyers_file == Path("deploy/buyers.example.yaml")
    # Kafka requires the heartbeat to be well inside the session timeout.
    assert 0 < s.heartbeat_interval_s * 3 <= s.session_timeout_s <= s.rebalance_timeout_s
    assert s.commit_interval_s > 0 and s.producer_linger_ms >= 0


def test_reads_kafka_bootstrap_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker-1:9092,broker-2:9092")
    assert Settings().bootstrap_servers == "broker-1:9092,broker-2:9092"


def test_router_bootstrap_servers_is_an_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTER_BOOTSTRAP_SERVERS", "kafka:29092")
    assert Settings().bootstrap_servers == "kafka:29092"


def test_reads_router_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTER_APP_ID", "router-test")
    monkeypatch.setenv("ROUTER_PARTITIONS", "12")
    monkeypatch.setenv("ROUTER_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("ROUTER_DEDUP_WINDOW_S", "3600")
    monkeypatch.setenv("ROUTER_CREATE_TOPICS", "false")
    monkeypatch.setenv("ROUTER_BUYERS_FILE", "/etc/router/buyers.yaml")
    monkeypatch.setenv("ROUTER_WEB_PORT", "8080")
    monkeypatch.setenv("ROUTER_SESSION_TIMEOUT_S", "45.5")
    s = Settings()
    assert s.app_id == "router-test"
    assert s.partitions == 12
    assert s.replication_factor == 3
    assert s.dedup_window_s == 3600
    assert s.create_topics is False
    assert s.buyers_file == Path("/etc/router/buyers.yaml")
    assert s.web_port == 8080
    assert s.session_timeout_s == 45.5


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ROUTER_PARTITIONS", "0"),
        ("ROUTER_PARTITIONS", "-3"),
        ("ROUTER_PARTITIONS", "four"),
        ("ROUTER_REPLICATION_FACTOR", "0"),
        ("ROUTER_DEDUP_WINDOW_S", "-1"),
    ],
)
def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        Settings()
    assert name.removeprefix("ROUTER_").lower() in str(info.value)


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(ValidationError):
        s.partitions = 8  # type: ignore[misc]


def test_a_flag_value_passed_by_field_name_wins_over_the_default(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    assert Settings(bootstrap_servers="10.0.0.1:9092").bootstrap_servers == "10.0.0.1:9092"


def test_batch_wait_is_read_and_never_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTER_BATCH_WITHIN_MS", "3")
    assert Settings().batch_within_ms == 3
    # Zero would make Faust's take_events wait until a batch is full: a quiet stream stalls.
    monkeypatch.setenv("ROUTER_BATCH_WITHIN_MS", "0")
    with pytest.raises(ValidationError, match="batch_within_ms"):
        Settings()


def test_batch_size_is_read_and_at_least_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTER_BATCH_MAX_EVENTS", "250")
    assert Settings().batch_max_events == 250
    monkeypatch.setenv("ROUTER_BATCH_MAX_EVENTS", "0")
    with pytest.raises(ValidationError, match="batch_max_events"):
        Settings()
