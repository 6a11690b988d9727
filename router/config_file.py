"""Load a buyers YAML file, refusing a bad one with the file, line and field named."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from yaml.reader import ReaderError

from router.buyers import Buyer, BuyersConfig

_MERGE_TAG = "tag:yaml.org,2002:merge"

Loc = tuple[int | str, ...]


class Problem(NamedTuple):
    """One problem in a config file: 1-based line, buyer id, dotted field inside the buyer."""

    line: int | None
    buyer: str | None
    field: str | None
    reason: str


def _format(path: str, problem: Problem) -> str:
    where = path if problem.line is None else f"{path}:{problem.line}"
    subject = []
    if problem.buyer is not None:
        subject.append(f"buyer {problem.buyer!r}")
    if problem.field is not None:
        subject.append(f"field {problem.field!r}")
    if subject:
        return f"{where}: {', '.join(subject)}: {problem.reason}"
    return f"{where}: {problem.reason}"


class ConfigError(Exception):
    """A refused config file. The attributes describe the first problem; `errors` holds them all."""

    def __init__(
        self,
        path: str,
        reason: str,
        *,
        line: int | None = None,
        buyer: str | None = None,
        field: str | None = None,
        errors: list[Problem] | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.buyer = buyer
        self.field = field
        self.reason = reason
        self.errors: list[Problem] = errors or [Problem(line, buyer, field, reason)]
        super().__init__(_format(path, Problem(line, buyer, field, reason)))

    @classmethod
    def from_problems(cls, path: str, problems: list[Problem]) -> ConfigError:
        first = problems[0]
        return cls(
            path,
            first.reason,
            line=first.line,
            buyer=first.buyer,
            field=first.field,
            errors=problems,
        )

    def messages(self) -> list[str]:
        """Every problem, formatted like `str(err)`, for a CLI to print."""
        return [_format(self.path, p) for p in self.errors]


def load_buyers(path: str | os.PathLike[str]) -> tuple[Buyer, ...]:
    return tuple(load_config(path).buyers)


def load_config(path: str | os.PathLike[str]) -> BuyersConfig:
    """The whole file: buyers and the verticals' distribution policies."""
    name = os.fspath(path)
    try:
        text = Path(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(name, "file not found") from None
    except IsADirectoryError:
        raise ConfigError(name, "is a directory, not a file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(name, f"not UTF-8 text: {exc.reason}") from None
    except OSError as exc:
        raise ConfigError(name, f"cannot read file: {exc.strerror or exc}") from None
    return parse_config(text, name)


def parse_buyers(text: str, path: str = "<string>") -> tuple[Buyer, ...]:
    return tuple(parse_config(text, path).buyers)


def parse_config(text: str, path: str = "<string>") -> BuyersConfig:
    root, data = _compose(text, path)
    if root is None or (isinstance(root, yaml.ScalarNode) and root.tag.endswith(":null")):
        raise ConfigError(path, "file is empty; expected a mapping with a 'buyers' key", line=1)
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(
            path,
            f"expected a mapping with a 'buyers' key at the top level, got a {_kind(root)}",
            line=_line(root),
        )

    problems = _duplicate_keys(root, data)
    duplicate_ids = _duplicate_ids(root, data)
    problems += duplicate_ids
    try:
        config = BuyersConfig.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            # The model's own duplicate-id check has no location; ours names the line.
            if duplicate_ids and error["loc"] == () and error["type"] == "value_error":
                continue
            problems.append(_from_pydantic(root, data, error))
    else:
        if not problems:
            return config
    problems.sort(key=lambda p: p.line or 0)
    raise ConfigError.from_problems(path, problems)


def _compose(text: str, path: str) -> tuple[yaml.Node | None, Any]:
    try:
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        reason = ", ".join(part for part in (exc.context, exc.problem) if part)
        raise ConfigError(
            path,
            f"invalid YAML: {reason or exc}",
            line=mark.line + 1 if mark is not None else None,
        ) from None
    except ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError(path, f"invalid YAML: {exc.reason}", line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(path, f"invalid YAML: {exc}") from None
    return root, data


def _from_pydantic(root: yaml.Node, data: Any, error: ErrorDetails) -> Problem:
    loc: Loc = tuple(error["loc"])
    reason = error["msg"]
    ctx = error.get("ctx") or {}
    if error["type"] == "value_error" and isinstance(ctx.get("error"), Exception):
        reason = str(ctx["error"])
    buyer, field = _subject(data, loc)
    return Problem(_locate(root, loc), buyer, field, reason)


def _subject(data: Any, loc: Loc) -> tuple[str | None, str | None]:
    """Split a location into the buyer's id (if it has a readable one) and the dotted field."""
    if len(loc) >= 2 and loc[0] == "buyers" and isinstance(loc[1], int):
        buyer = None
        buyers = data.get("buyers") if isinstance(data, dict) else None
        if isinstance(buyers, list) and 0 <= loc[1] < len(buyers):
            entry = buyers[loc[1]]
            if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                buyer = entry["id"]
        rest = loc[2:]
        return buyer, ".".join(str(part) for part in rest) if rest else None
    return None, ".".join(str(part) for part in loc) if loc else None


def _locate(root: yaml.Node, loc: Loc) -> int:
    """The line of the deepest node on `loc`; a key's own line when the path ends at a key."""
    node, line = root, _line(root)
    for step in loc:
        found = _child(node, step)
        if found is None:
            break
        node, line = found
    return line


def _child(node: yaml.Node, step: int | str) -> tuple[yaml.Node, int] | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if (
                isinstance(key, yaml.ScalarNode)
                and key.tag != _MERGE_TAG
                and key.value == str(step)
            ):
                return value, _line(key)
        # Explicit keys win over merged ones (`<<: *defaults`), so look there only after.
        for key, value in node.value:
            if key.tag == _MERGE_TAG:
                sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
                for source in sources:
                    found = _child(source, step)
                    if found is not None:
                        return found
    elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
        item = node.value[step]
        return item, _line(item)
    return None


def _duplicate_keys(root: yaml.Node, data: Any) -> list[Problem]:
    """YAML lets a later key silently replace an earlier one; a config must not."""
    problems: list[Problem] = []
    seen_nodes: set[int] = set()

    def walk(node: yaml.Node, loc: Loc) -> None:
        if id(node) in seen_nodes:
            return
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first_line: dict[tuple[str, str], int] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != _MERGE_TAG:
                    ident = (key.tag, key.value)
                    if ident in first_line:
                        buyer, field = _subject(data, (*loc, key.value))
                        reason = f"duplicate key {key.value!r} (first on line {first_line[ident]})"
                        problems.append(Problem(_line(key), buyer, field, reason))
                    else:
                        first_line[ident] = _line(key)
                    walk(value, (*loc, key.value))
                else:
                    walk(value, loc)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*loc, index))

    walk(root, ())
    return problems


def _duplicate_ids(root: yaml.Node, data: Any) -> list[Problem]:
    buyers = data.get("buyers") if isinstance(data, dict) else None
    if not isinstance(buyers, list):
        return []
    problems: list[Problem] = []
    first_line: dict[str, int] = {}
    for index, entry in enumerate(buyers):
        ident = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(ident, str):
            continue
        line = _locate(root, ("buyers", index, "id"))
        if ident in first_line:
            reason = f"duplicate buyer id {ident!r} (first on line {first_line[ident]})"
            problems.append(Problem(line, ident, "id", reason))
        else:
            first_line[ident] = line
    return problems


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _kind(node: yaml.Node) -> str:
    return "list" if isinstance(node, yaml.SequenceNode) else "scalar"
