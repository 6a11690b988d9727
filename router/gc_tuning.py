"""The worker's garbage-collector settings, and a histogram of its pauses.

A worker holds a large heap that lives as long as the process (the zip-code and phone-number
tables, pydantic's validators, Faust's and our modules) and allocates many short-lived objects
per event. With CPython's defaults (a young collection every 700 net allocations, a full
collection every 100 of those) the collector took ~15 % of a worker's CPU while it drained a
backlog, and each full collection walked the whole heap, pausing every stage for 0.3-0.5 s
(docs/performance.md row 33).

`tune` moves everything alive at start-up out of the collector's reach (`gc.freeze`) and lets
the young generation grow before it is collected. Reference counting still frees objects at
once; the collector only looks for cycles, so collecting less often changes memory little.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Histogram


def tune(young_threshold: int) -> None:
    """Freeze the start-up heap and collect the young generation every `young_threshold` net
    allocations; 0 leaves the collector as CPython set it."""
    if young_threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, old)


def watch_pauses(pauses: Histogram) -> Callable[[], None]:
    """Observe every collection's duration in `pauses` (labelled by generation); returns the
    function that stops watching."""
    started: list[float] = []

    def on_collection(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[:] = [time.perf_counter()]
        elif started:
            pauses.labels(str(info["generation"])).observe(time.perf_counter() - started[0])

    gc.callbacks.append(on_collection)

    def stop() -> None:
        if on_collection in gc.callbacks:
            gc.callbacks.remove(on_collection)

    return stop
