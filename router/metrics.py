"""Prometheus metrics, created on a registry the composition root passes in (tests use a
fresh CollectorRegistry). Labels stay low-cardinality: never a lead id, email or phone."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# 1 ms .. 60 s: intake-to-buyer latency from a sub-millisecond hop up to a stalled minute.
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
# 0.1 ms .. 1 s: a young collection up to a full one over a large heap.
GC_PAUSE_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
OTHER = "other"


@dataclass(frozen=True)
class Metrics:
    intake_events: Counter
    decisions: Counter
    dead_letters: Counter
    leads_sold: Counter
    revenue: Counter
    cap_used: Gauge
    cap_limit: Gauge
    buyer_local_hour: Gauge
    stage_seconds: Histogram
    end_to_end_seconds: Histogram
    consumer_lag: Gauge
    committed_offset: Gauge
    end_offset: Gauge
    assigned_partitions: Gauge
    rebalances: Counter
    partitions_refetched: Counter
    offsets_skipped: Counter
    send_errors: Counter
    table_keys_expired: Counter
    gc_pause_seconds: Histogram
    build_info: Gauge


def create(registry: CollectorRegistry) -> Metrics:
    def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        return Counter(name, doc, labels, registry=registry)

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, doc, labels, registry=registry)

    return Metrics(
        intake_events=counter(
            "router_intake_events_total", "Intake events read", ("channel", "vertical")
        ),
        decisions=counter(
            "router_decisions_total",
            "Decisions written, by outcome and reason code",
            ("outcome", "reason"),
        ),
        dead_letters=counter(
            "router_dead_letters_total", "Intake events sent to leads.rejected", ("reason",)
        ),
        leads_sold=counter("router_leads_sold_total", "Leads sold", ("buyer",)),
        revenue=counter("router_revenue_dollars_total", "Price of leads sold", ("buyer",)),
        cap_used=gauge(
            "router_buyer_cap_used",
            "Leads counted against a buyer's cap in its current local window",
            ("buyer", "window"),
        ),
        cap_limit=gauge("router_buyer_cap_limit", "A buyer's cap per window", ("buyer", "window")),
        buyer_local_hour=gauge(
            "router_buyer_local_hour",
            "The hour of day (0-23) now in the buyer's time zone, for local-time alerting",
            ("buyer",),
        ),
        stage_seconds=Histogram(
            "router_stage_seconds",
            "Processing time of one event in a stage, excluding Kafka I/O waits",
            ("stage",),
            buckets=STAGE_BUCKETS,
            registry=registry,
        ),
        end_to_end_seconds=Histogram(
            "router_end_to_end_latency_seconds",
            "From the lead's occurred_at to its write on the buyer topic",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        consumer_lag=gauge(
            "router_consumer_lag_messages",
            "End offset minus committed offset, per partition assigned to this worker",
            ("topic", "partition"),
        ),
        committed_offset=gauge(
            "router_consumer_committed_offset",
            "Last committed offset, per partition assigned to this worker",
            ("topic", "partition"),
        ),
        end_offset=gauge(
            "router_consumer_end_offset",
            "Log end offset (high water), per partition assigned to this worker",
            ("topic", "partition"),
        ),
        assigned_partitions=gauge(
            "router_assigned_partitions", "Partitions currently assigned to this worker"
        ),
        rebalances=counter("router_rebalances_total", "Consumer group rebalances seen"),
        partitions_refetched=counter(
            "router_partitions_refetched_total",
            "Stream partitions found not consumed for a minute while records waited, fetched again",
            ("reason",),
        ),
        offsets_skipped=counter(
            "router_offsets_skipped_total",
            "Offsets a fetch jumped over, which Faust commits past unprocessed",
            ("topic",),
        ),
        send_errors=counter(
            "router_producer_send_errors_total", "Records the producer failed to send", ("topic",)
        ),
        table_keys_expired=counter(
            "router_table_keys_expired_total",
            "Table keys deleted by the retention sweep (router/retention.py)",
            ("table",),
        ),
        gc_pause_seconds=Histogram(
            "router_gc_pause_seconds",
            "Garbage-collector pauses, by generation (0 young .. 2 full; router/gc_tuning.py)",
            ("generation",),
            buckets=GC_PAUSE_BUCKETS,
            registry=registry,
        ),
        build_info=gauge("router_build_info", "Always 1", ("version", "worker_id")),
    )
