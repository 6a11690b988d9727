"""Shared fixtures. Tier markers are applied by directory so no test can be left unmarked."""

from __future__ import annotations

import pytest

TIERS = {"unit", "integration", "slow"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not TIERS & {mark.name for mark in item.iter_markers()}:
            tier = item.path.parent.name
            if tier in TIERS:
                item.add_marker(getattr(pytest.mark, tier))
