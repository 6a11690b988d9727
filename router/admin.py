"""Topic administration against any Kafka-protocol broker."""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from router.catalog import TopicSpec

TOPIC_ALREADY_EXISTS = 36


async def ensure_topics(
    bootstrap_servers: str, specs: Iterable[TopicSpec], partitions: int, replication: int
) -> dict[str, str]:
    """Create each topic that does not exist yet. Returns name -> 'created' | 'exists'."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="router-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
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
