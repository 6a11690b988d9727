"""Public contracts as files: `topics/catalog.json` and `topics/schemas/*.json`, generated from
the models so the documentation cannot drift from the code (a test compares them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
from pydantic import BaseModel

from router import buyers, catalog, contract, records

Model = type[BaseModel] | type[records.Record]

# Buyer topics share one schema; the catalog is generated without a buyers file.
PUBLIC_MODELS: dict[str, Model] = {
    **{f"intent.{ch}": model for ch, model in contract.INTAKE_MODELS.items()},
    "buyer_lead": records.BuyerLead,
    "decision": records.Decision,
    "dead_letter": records.DeadLetter,
    "unsold_lead": records.UnsoldLead,
    "buyer_config": buyers.Buyer,
    "vertical_policy": buyers.VerticalPolicy,
    "suppression": records.Suppression,
    "feedback": records.Feedback,
    "feedback_result": records.FeedbackResult,
    "call_event": records.CallEvent,
    "publisher_quality": records.PublisherQuality,
}


def schema_name(model: Model) -> str | None:
    for name, known in PUBLIC_MODELS.items():
        if known is model:
            return name
    return None


def json_schema(model: Model) -> dict[str, Any]:
    """The model's JSON Schema: pydantic's for the intake contract and the buyers' config,
    msgspec's for records, both with nested types under `$defs`."""
    if issubclass(model, BaseModel):
        return model.model_json_schema()
    (ref,), defs = msgspec.json.schema_components([model], ref_template="#/$defs/{name}")
    top = defs.pop(ref["$ref"].rsplit("/", 1)[1])
    return {**top, "$defs": defs} if defs else top


def documents() -> dict[str, str]:
    """Relative path -> file text for every generated contract file."""
    files: dict[str, str] = {}
    for name, model in PUBLIC_MODELS.items():
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            **json_schema(model),
        }
        files[f"schemas/{name}.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    topics = []
    for spec in catalog.catalog("lead-router", ["<buyer_id>"]):
        schema_file = schema_name(spec.value) if spec.value else None
        topics.append(
            {
                "name": spec.name,
                "role": spec.role,
                "key": spec.key,
                "description": spec.description,
                "schema": f"schemas/{schema_file}.json" if schema_file else None,
                "configs": spec.configs,
                "partitions": "ROUTER_PARTITIONS",
            }
        )
    files["catalog.json"] = json.dumps({"topics": topics}, indent=2) + "\n"
    return files


def write(out: Path) -> list[Path]:
    written = []
    for relative, text in documents().items():
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
