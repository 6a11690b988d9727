"""Topic administration against any Kafka-protocol broker."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from router.catalog import TopicSpec

TOPIC_ALREADY_EXISTS = 36
# Topics read next to a table, and the tables' changelogs: a table partition only sees its own
# stream partition, so these must all have the same partition count.
CO_PARTITIONED_ROLES = frozenset({"internal", "feedback", "changelog"})


class PartitionCountMismatch(RuntimeError):
    """A topic that must be co-partitioned with the tables exists with another count."""


def partition_mismatches(
    specs: Iterable[TopicSpec], counts: Mapping[str, int], partitions: int
) -> list[str]:
    """What is wrong with the existing co-partitioned topics, one line per topic."""
    return [
        f"topic {s.name!r} has {counts[s.name]} partitions; the router needs {partitions} "
        f"(ROUTER_PARTITIONS), as its tables are partitioned like it"
        for s in specs
        if s.role in CO_PARTITIONED_ROLES and s.name in counts and counts[s.name] != partitions
    ]


async def ensure_topics(
    bootstrap_servers: str, specs: Iterable[TopicSpec], partitions: int, replication: int
) -> dict[str, str]:
    """Create each topic that does not exist yet. Returns name -> 'created' | 'exists'.

    Raises PartitionCountMismatch, before creating anything, if a topic that must be
    co-partitioned with the tables already exists with another partition count.
    """
    specs = list(specs)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="router-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        checked = [s.name for s in specs if s.role in CO_PARTITIONED_ROLES and s.name in existing]
        if checked:
            described = await admin.describe_topics(checked)
            counts = {t["topic"]: len(t["partitions"]) for t in described}
            problems = partition_mismatches(specs, counts, partitions)
            if problems:
                raise PartitionCountMismatch("; ".join(problems))
        wanted = [s for s in specs if s.name not in existing]
        result = {s.name: "exists" for s in specs if s.name in existing}
        if wanted:
            response = await admin.create_topics(
                [NewTopic(s.name, partitions, replication, topic_configs=s.configs) for s in wanted]
            )
            for name, code, message in response.topic_errors:
                if code not in (0, TOPIC_ALREADY_EXISTS):
                    raise RuntimeError(f"creating topic {name!r} failed: {code} {message}")
                result[name] = "created" if code == 0 else "exists"
        return result
    finally:
        await admin.close()
