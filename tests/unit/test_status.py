"""`router buyers status`: ask every worker, keep each buyer's answer from its owner."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from test_web import ACME, GLOBEX, NOW

from router import status, web
from router.buyers import Buyer

pytestmark = pytest.mark.unit

INITECH = Buyer(id="initech", name="Initech", verticals=["solar"], price=10)
TABLE: dict[str, Any] = {
    "acme|hour|2026-11-23T09-0600": {"sold": 2, "spend": 80.0, "returned": 0},
    "acme|day|2026-11-23": {"sold": 6, "spend": 240.5, "returned": 1},
    "acme|month|2026-11": {"sold": 11, "spend": 440.0, "returned": 1},
    "acme|calls": {"l1": (NOW + timedelta(minutes=5)).isoformat()},
    "globex|day|2026-11-23": {"sold": 3, "spend": 75.0, "returned": 0},
}


def entry(buyer: Buyer, owned: bool) -> dict[str, Any]:
    """What a worker's /buyers/ reports for one buyer (web's own function, so the two ends
    of the wire cannot drift apart unnoticed)."""
    return web.buyer_status(buyer, TABLE.get, owned, NOW)


class _Worker:
    """A stand-in worker: canned JSON per path, 404 for any other path."""

    def __init__(self, routes: Mapping[str, tuple[int, Any]]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                code, body = routes.get(self.path, (404, {"error": "not found"}))
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def _routes(entries: list[dict[str, Any]]) -> dict[str, tuple[int, Any]]:
    routes: dict[str, tuple[int, Any]] = {"/buyers/": (200, {"buyers": entries})}
    for one in entries:
        routes[f"/buyers/{one['id']}/"] = (200, one)
    return routes


@pytest.fixture(scope="module")
def workers() -> Iterator[tuple[_Worker, _Worker]]:
    # Worker A owns acme's partition; worker B owns globex's. Neither owns initech's.
    a = _Worker(_routes([entry(ACME, True), entry(GLOBEX, False), entry(INITECH, False)]))
    b = _Worker(_routes([entry(ACME, False), entry(GLOBEX, True), entry(INITECH, False)]))
    yield a, b
    a.close()
    b.close()


@pytest.mark.parametrize("order", ["ab", "ba"])
def test_each_buyer_comes_from_the_worker_that_owns_it(
    workers: tuple[_Worker, _Worker], order: str
) -> None:
    a, b = workers
    urls = [a.url, b.url] if order == "ab" else [b.url + "/", a.url + "/"]
    found = status.collect(urls)
    assert [e["id"] for e in found] == ["acme", "globex", "initech"]
    by_id = {e["id"]: e for e in found}
    assert by_id["acme"] == entry(ACME, True)
    assert by_id["globex"] == entry(GLOBEX, True)
    assert by_id["initech"] == entry(INITECH, False)  # nobody owns it: config only


@pytest.mark.parametrize("order", ["ab", "ba"])
def test_one_buyer_comes_from_its_owner(workers: tuple[_Worker, _Worker], order: str) -> None:
    a, b = workers
    urls = [a.url, b.url] if order == "ab" else [b.url, a.url]
    assert status.collect(urls, "acme") == [entry(ACME, True)]
    assert status.collect(urls, "globex") == [entry(GLOBEX, True)]


def test_a_buyer_no_worker_knows_is_an_error(workers: tuple[_Worker, _Worker]) -> None:
    a, b = workers
    with pytest.raises(status.StatusError, match="no worker knows buyer 'nobody'"):
        status.collect([a.url, b.url], "nobody")


def test_a_worker_that_does_not_know_the_buyer_yet_is_skipped(
    workers: tuple[_Worker, _Worker],
) -> None:
    """A worker whose config lags answers 404 for a new buyer: the others still answer."""
    a, _ = workers
    lagging = _Worker(_routes([entry(GLOBEX, False)]))
    try:
        assert status.collect([lagging.url, a.url], "acme") == [entry(ACME, True)]
    finally:
        lagging.close()


def test_a_worker_that_fails_is_an_error_not_an_empty_answer() -> None:
    broken = _Worker({"/buyers/": (500, {"error": "boom"})})
    try:
        with pytest.raises(status.StatusError, match="HTTP 500"):
            status.collect([broken.url])
    finally:
        broken.close()


def test_an_unreachable_worker_is_an_error() -> None:
    gone = _Worker({})
    url = gone.url
    gone.close()  # nothing listens on that port any more
    with pytest.raises(status.StatusError):
        status.collect([url])


def test_render_shows_usage_against_limits_and_unowned_buyers() -> None:
    text = status.render([entry(ACME, True), entry(GLOBEX, False)])
    assert text.splitlines() == [
        "acme (Acme): active",
        "  hourly           2 / 5 [2026-11-23T09-0600]",
        "  daily            6 / 20 [2026-11-23]",
        "  daily_budget     240.50 / 500.00 [2026-11-23]",
        "  monthly_budget   440.00 / no limit [2026-11]",
        "  concurrent_calls 1 / 2",
        "globex (Globex): paused",
        "  usage: not reported (no worker given owns this buyer's partition)",
    ]
