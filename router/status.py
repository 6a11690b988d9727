"""`router buyers status`: each buyer's live usage as its owning worker reports it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any


class StatusError(Exception):
    pass


def _get(url: str, timeout_s: float = 5.0) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise StatusError(f"{url}: HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise StatusError(f"{url}: {exc}") from exc


def collect(urls: Iterable[str], buyer_id: str | None = None) -> list[dict[str, Any]]:
    """Every buyer once, from the worker that owns it when one does."""
    merged: dict[str, dict[str, Any]] = {}
    for base in urls:
        root = base.rstrip("/")
        if buyer_id is None:
            answer = _get(f"{root}/buyers/")
            entries = answer["buyers"] if answer else []
        else:
            entry = _get(f"{root}/buyers/{buyer_id}/")
            entries = [entry] if entry else []
        for entry in entries:
            known = merged.get(entry["id"])
            if known is None or (entry["owned_here"] and not known["owned_here"]):
                merged[entry["id"]] = entry
    if buyer_id is not None and buyer_id not in merged:
        raise StatusError(f"no worker knows buyer {buyer_id!r}")
    return [merged[key] for key in sorted(merged)]


def _amount(window: str, value: float) -> str:
    return f"{value:.2f}" if window.endswith("budget") else f"{value:g}"


def render(entries: list[dict[str, Any]]) -> str:
    lines = []
    for entry in entries:
        lines.append(f"{entry['id']} ({entry['name']}): {entry['status']}")
        usage = entry.get("usage")
        if usage is None:
            lines.append("  usage: not reported (no worker given owns this buyer's partition)")
            continue
        for window, line in usage.items():
            used = _amount(window, line["used"])
            limit = "no limit" if line["limit"] is None else _amount(window, line["limit"])
            where = f" [{line['window']}]" if line.get("window") else ""
            lines.append(f"  {window:16} {used} / {limit}{where}")
    return "\n".join(lines)
