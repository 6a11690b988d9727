"""Two workers under steady load; SIGKILL one at a random moment, 20 times, then audit.

Some kills land while the restarted worker is still recovering its tables from the changelogs,
some while the surviving worker is in the middle of the rebalance the restart caused.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from chaos_conftest import (
    MARK_ASSIGNED,
    MARK_READY,
    MARK_REJOIN,
    MARK_REVOKE,
    PARTITIONS,
    WORKER_ENV,
    Load,
    audit,
    log_size,
    logged_since,
    marker_at,
    seeded,
    wait_log,
    wait_ready,
)

from router.buyers import Buyer

pytestmark = pytest.mark.slow

ITERATIONS = 20
RATE = 120  # leads/s, for the whole run
BUDGET_S = 7 * 60  # the kill loop itself; the audit adds its own bounded wait


def test_kill_loop(workers, buyers_file: tuple[Path, dict[str, Buyer]]) -> None:  # type: ignore[no-untyped-def]
    path, buyers = buyers_file
    group = workers(path, partitions=PARTITIONS)
    rng = seeded("kill_loop")
    slots = [group.start(**WORKER_ENV), group.start(**WORKER_ENV)]
    for process in slots:
        wait_ready(group, process)

    plan = ["recovery"] * 5 + ["rebalance"] * 5 + ["steady"] * (ITERATIONS - 10)
    rng.shuffle(plan)
    stats: Counter[str] = Counter()
    timeline: list[dict[str, Any]] = []
    died: list[dict[str, Any]] = []
    started = time.monotonic()
    deadline = started + BUDGET_S

    def kill_and_restart(slot: int, why: str, landed: bool | None = None) -> int:
        process = slots[slot]
        at = round(time.monotonic() - started, 1)
        if process.poll() is not None:
            # Nobody killed it: the worker exited on its own (a crash the router did not survive).
            died.append({"t": at, "slot": slot, "exit": process.returncode})
        group.kill(process)
        slots[slot] = group.start(**WORKER_ENV)
        stats["kills"] += 1
        stats[f"kills_{why}"] += 1
        if landed:
            stats[f"kills_{why}_landed"] += 1
        timeline.append({"t": at, "slot": slot, "why": why, "landed": landed})
        return slot

    load = Load(group.broker.bootstrap_servers, rate=RATE, seed=41).start()
    try:
        for kind in plan:
            if time.monotonic() > deadline:
                break
            time.sleep(rng.uniform(3.0, 8.0))  # a random moment under load
            victim = rng.randrange(2)
            other = 1 - victim
            other_log_at = log_size(group, slots[other])
            kill_and_restart(victim, "random")
            stats["iterations"] += 1

            if kind == "recovery":
                # Kill the restarted worker again while it restores its tables.
                restarted = slots[victim]
                seen, _ = wait_log(group, restarted, MARK_ASSIGNED, timeout=40)
                time.sleep(rng.uniform(0.1, 1.5))
                landed = seen and not logged_since(group, restarted, MARK_READY, 0)
                kill_and_restart(victim, "in_recovery", landed)
            elif kind == "rebalance":
                # Kill the survivor while it rebalances to let the restarted worker in.
                survivor = slots[other]
                rebalancing = (MARK_REVOKE, MARK_REJOIN)
                wait_log(group, survivor, rebalancing, timeout=40, after=other_log_at)
                time.sleep(rng.uniform(0.0, 0.5))
                # Ready *after the rebalance began*: a survivor restarted shortly before logs
                # its own start's ready past `other_log_at`, and that kill landed all the same.
                began = marker_at(group, survivor, rebalancing, other_log_at)
                landed = began is not None and not logged_since(group, survivor, MARK_READY, began)
                kill_and_restart(other, "in_rebalance", landed)
    finally:
        load.stop()
    load_stopped = time.monotonic()
    loop_s = round(load_stopped - started, 1)

    result = audit(group.broker, buyers, group.app_id, since=load_stopped, log_dir=group.log_dir)
    alive = [process.poll() is None for process in slots]
    if died:
        result.violations.append(f"workers exited by themselves (then restarted): {died}")
    if not all(alive):
        result.violations.append(f"worker dead at the end: alive={alive}")
    line = result.report(
        "kill_loop",
        kills=stats["kills"],
        kills_in_recovery=f"{stats['kills_in_recovery_landed']}/{stats['kills_in_recovery']}",
        kills_in_rebalance=f"{stats['kills_in_rebalance_landed']}/{stats['kills_in_rebalance']}",
        loop_s=loop_s,
        load={"sent": load.sent, "acked": load.acked, "failed": load.failed},
    )
    print("kill timeline:", timeline, flush=True)

    assert stats["iterations"] == ITERATIONS, f"only {stats['iterations']} kills within budget"
    assert stats["kills_in_recovery_landed"] >= 3, timeline
    assert stats["kills_in_rebalance_landed"] >= 3, timeline
    assert line["violations"] == []
