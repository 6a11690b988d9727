"""Wire format of every record: UTF-8 JSON, via pydantic's compiled serializer."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


def encode(record: BaseModel) -> bytes:
    return record.__pydantic_serializer__.to_json(record)


def decode(model: type[M], data: bytes) -> M:
    return model.model_validate_json(data)
