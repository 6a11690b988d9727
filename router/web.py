"""The worker's HTTP surface: /metrics, /healthz (alive) and /ready (serving)."""

from __future__ import annotations

from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


def is_ready(app: faust.App) -> tuple[bool, str]:
    if app.rebalancing:
        return False, "rebalancing"
    if not app.consumer.assignment():
        return False, "no partitions assigned"
    if not app.tables.recovery.completed.is_set():  # type: ignore[attr-defined]
        return False, "table recovery in progress"
    return True, "ok"


def register(app: faust.App, registry: CollectorRegistry) -> None:
    @app.page("/metrics")
    async def metrics_view(self: Any, request: Any) -> Any:
        # aiohttp wants the charset separately from the media type.
        media_type = CONTENT_TYPE_LATEST.split(";", 1)[0]
        return self.bytes(generate_latest(registry), content_type=media_type)

    @app.page("/healthz")
    async def healthz(self: Any, request: Any) -> Any:
        return self.json({"status": "alive"})

    @app.page("/ready")
    async def ready(self: Any, request: Any) -> Any:
        ok, why = is_ready(app)
        return self.json({"ready": ok, "status": why}, status=200 if ok else 503)
