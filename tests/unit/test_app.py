from __future__ import annotations

from pathlib import Path

import pytest

from router.app import create_app
from router.settings import Settings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("given", "expected"), [({}, 0), ({"standby_replicas": 1}, 1)])
def test_standby_replicas_reach_faust(tmp_path: Path, given: dict[str, int], expected: int) -> None:
    # Standby replicas read every changelog record a second time; none unless asked for.
    settings = Settings(bootstrap_servers="127.0.0.1:1", data_dir=tmp_path, **given)
    app, _ = create_app(settings, [])
    assert app.conf.table_standby_replicas == expected
