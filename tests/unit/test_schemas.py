from __future__ import annotations

import importlib
import importlib.util
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from router import catalog, schemas
from router.contract import CHANNELS, INTAKE_MODELS, Channel
from router.synthetic import SyntheticEvent, generate

pytestmark = pytest.mark.unit

TOPICS_DIR = Path(__file__).resolve().parents[2] / "topics"
REGENERATE = "generated contract files are stale: run `make schemas` and commit topics/"
INTAKE_REQUIRED = {"event_id", "occurred_at", "vertical", "source"}


def committed_files() -> dict[str, str]:
    return {
        path.relative_to(TOPICS_DIR).as_posix(): path.read_text()
        for path in sorted(TOPICS_DIR.rglob("*.json"))
    }


def load_schema(name: str) -> dict[str, Any]:
    return json.loads((TOPICS_DIR / "schemas" / f"{name}.json").read_text())


def test_committed_files_match_the_models() -> None:
    generated = schemas.documents()
    committed = committed_files()
    missing = sorted(set(generated) - set(committed))
    stale = sorted(set(committed) - set(generated))
    assert not missing, f"{REGENERATE} (missing: {missing})"
    assert not stale, f"{REGENERATE} (no longer generated: {stale})"
    changed = sorted(name for name in generated if generated[name] != committed[name])
    assert not changed, f"{REGENERATE} (differs: {changed})"


def test_every_public_topic_with_a_model_has_a_schema_file() -> None:
    documented = json.loads((TOPICS_DIR / "catalog.json").read_text())["topics"]
    by_name = {topic["name"]: topic for topic in documented}
    for spec in catalog.catalog("lead-router", ["<buyer_id>"]):
        entry = by_name[spec.name]
        if spec.value is None or spec.role == "internal":
            # Internal records (NormalizedLead on leads.screen, Offer on leads.offers) are
            # not part of the public contract and deliberately have no schema file.
            assert entry["schema"] is None, spec.name
            continue
        name = schemas.schema_name(spec.value)
        assert name is not None, f"{spec.name} carries {spec.value.__name__} without a schema"
        assert entry["schema"] == f"schemas/{name}.json"
        assert (TOPICS_DIR / entry["schema"]).is_file(), f"{REGENERATE} ({entry['schema']})"
    assert {t["name"] for t in documented} >= set(catalog.INTAKE.values())


@pytest.mark.parametrize("channel", CHANNELS)
def test_intake_schemas_require_the_shared_fields(channel: Channel) -> None:
    schema = load_schema(f"intent.{channel}")
    assert set(schema["required"]) >= INTAKE_REQUIRED
    assert set(schema["required"]) <= set(schema["properties"])
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def missing_required(
    instance: Any, node: dict[str, Any], root: dict[str, Any], path: str = ""
) -> list[str]:
    """Required keys absent from `instance`, following $ref and nullable anyOf into objects."""
    node = _resolve(node, root)
    for option in node.get("anyOf", []):
        option = _resolve(option, root)
        if option.get("type") == "object" and isinstance(instance, dict):
            node = option
    if not isinstance(instance, dict) or node.get("type") != "object":
        return []
    gaps = [f"{path}{key}" for key in node.get("required", []) if key not in instance]
    for key, sub in node.get("properties", {}).items():
        if key in instance:
            gaps += missing_required(instance[key], sub, root, f"{path}{key}.")
    return gaps


def valid_examples() -> dict[Channel, SyntheticEvent]:
    found: dict[Channel, SyntheticEvent] = {}
    base = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    for ev in generate(400, seed=11, base_time=base):
        if ev.kind == "valid":
            found.setdefault(ev.channel, ev)
    return found


@pytest.mark.parametrize("channel", CHANNELS)
def test_synthetic_valid_event_satisfies_its_schema(channel: Channel) -> None:
    example = valid_examples()[channel]
    instance = orjson.loads(example.payload)
    schema = load_schema(f"intent.{channel}")

    INTAKE_MODELS[channel].model_validate_json(example.payload)
    assert missing_required(instance, schema, schema) == []
    assert set(instance) >= INTAKE_REQUIRED

    if importlib.util.find_spec("jsonschema") is not None:  # optional: not a dependency
        jsonschema = importlib.import_module("jsonschema")
        jsonschema.Draft202012Validator(schema).validate(instance)


def test_required_key_check_notices_a_gap() -> None:
    # The home-made check above must be able to fail, or it proves nothing.
    schema = load_schema("intent.call")
    instance = orjson.loads(valid_examples()["call"].payload)
    del instance["source"]["publisher_id"]
    del instance["call"]["call_id"]
    assert sorted(missing_required(instance, schema, schema)) == [
        "call.call_id",
        "source.publisher_id",
    ]
