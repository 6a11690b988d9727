"""The one typed settings object. The only place that reads the environment."""

from __future__ import annotations

import tempfile
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    # populate_by_name: CLI flags pass `bootstrap_servers=`; without it pydantic ignores the
    # field name of an aliased field and falls back to the default.
    model_config = SettingsConfigDict(
        env_prefix="ROUTER_", frozen=True, extra="ignore", populate_by_name=True
    )

    bootstrap_servers: str = Field(
        default="localhost:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "ROUTER_BOOTSTRAP_SERVERS"),
    )
    app_id: str = "lead-router"
    buyers_file: Path = Path("deploy/buyers.example.yaml")
    partitions: int = Field(default=4, ge=1, description="Partitions of every catalog topic")
    replication_factor: int = Field(default=1, ge=1)
    dedup_window_s: int = Field(default=86_400, ge=0)
    # How long past its use a consumer's dedup state (beyond the dedup window) and a
    # publisher signal's seen mark are kept: longer than any replay after a crash. Seen marks
    # are also kept past any repeat of their signal (router/retention.py).
    state_retention_s: int = Field(default=7 * 86_400, ge=1)
    # How often a worker starts a pass over those tables' keys to forget expired ones.
    sweep_interval_s: float = Field(default=3_600, gt=0)
    create_topics: bool = Field(default=True, description="Worker creates missing topics at start")
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    web_enabled: bool = True
    log_level: str = "info"
    # Group-membership timeouts: Kafka defaults made the first join take ~30 s on the embedded
    # broker; these keep a join to a few seconds while staying safe on real Kafka.
    session_timeout_s: float = 10.0
    heartbeat_interval_s: float = 1.0
    rebalance_timeout_s: float = 20.0
    commit_interval_s: float = 1.0
    producer_linger_ms: int = 5
    # Kafka answers a waiting fetch when data arrives, so there this only spaces out the
    # empty fetches of an idle partition; a broker that holds each fetch for its whole wait
    # (the embedded one) adds it to every hop. 100 cut paced p99 ~4x against Kafka's 500 at
    # no measured cost in throughput; 20 cost CPU (docs/performance.md row 40).
    fetch_max_wait_ms: int = Field(default=100, ge=0)
    # Faust's standby table replicas: a worker keeps a warm copy of partitions another worker
    # owns, so failover skips recovery, but it reads every changelog record a second time
    # (measured: two workers used 1.8x the CPU per lead). 0 recovers from the changelog instead.
    standby_replicas: int = Field(default=0, ge=0)
    # Agents take events in batches; a batch that is not full closes this long after the
    # previous one, so this bounds the latency a quiet stream adds per hop.
    batch_within_ms: int = Field(default=10, ge=1)  # 0 would mean "until full"
    # The most events a batch takes. A backlog drains in full batches; each one waits for its
    # changelog records once. 2000 measured no faster than 500 (docs/performance.md row 27).
    batch_max_events: int = Field(default=500, ge=1)
    # The worker's young-generation collection threshold; at start-up it also freezes the heap
    # alive then, so full collections skip it (router/gc_tuning.py). 0 keeps CPython's own.
    gc_young_threshold: int = Field(default=10_000, ge=0)
    # For brokers that report the start of the last batch as a partition's end offset (the
    # embedded one): table recovery then reads on to the true end. Kafka needs no help.
    verify_end_offsets: bool = False
    # Whether capture services write intake topics with transactions. Each transaction then
    # leaves a commit marker, an offset no consumer reads, so the guard against skipped
    # offsets (router/offset_holes.py) must leave intake alone; without transactions Kafka
    # never leaves a hole there, and a broker that does loses leads unless they are read again.
    intake_transactional: bool = False
    # Faust wants a data directory even with in-memory tables; keep it out of the checkout.
    data_dir: Path = Path(tempfile.gettempdir()) / "lead-router"
