"""docs/settings.md, rendered from the pydantic-settings models: ``python -m ops.settings_doc > docs/settings.md``.

One section per settings class, and one per group of settings: a field whose type is itself a settings class or a
pydantic model is rendered as a section of its own, recursively. A nested settings class reads the environment with
its own prefix; a nested plain model is read through its parent's ``env_nested_delimiter`` when it has one, else as
one JSON variable. ``tests/test_settings_doc.py`` fails when docs/settings.md differs from what this renders.
"""

from __future__ import annotations

import inspect
import json
import sys
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path, PurePath
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import AliasChoices, AliasPath, BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

import model
from model.settings import DataSettings
from ops.rollout.client import ClientSettings
from ops.settings import OpsSettings
from service.core.settings import Settings

ROOTS: tuple[type[BaseModel], ...] = (Settings, OpsSettings, ClientSettings, DataSettings)
COMMAND = "python -m ops.settings_doc > docs/settings.md"
# Defaults computed from where the code lies or whose home it runs in are shown relative to those.
PROJECT_ROOT = Path(model.__file__).resolve().parent.parent


@dataclass(frozen=True)
class Variable:
    """One setting: the environment names that set it, and what it takes."""

    reader: type[BaseModel]  # the settings class whose instances read it from the environment
    field: str  # the field of ``reader`` that receives it
    env_names: tuple[str, ...]
    type: str
    default: str
    description: str


@dataclass(frozen=True)
class Section:
    """One settings class or group: where it sits (``Settings.server``) and its variables, in declaration order."""

    cls: type[BaseModel]
    path: str
    variables: tuple[Variable, ...]


@dataclass(frozen=True)
class _Reading:
    """How the fields of the class being rendered reach the environment."""

    reader: type[BaseModel]
    field: str | None  # the reader's field a nested plain model's variables land in; None: the field itself
    prefix: str
    case_sensitive: bool


def sections(roots: Sequence[type[BaseModel]] = ROOTS) -> list[Section]:
    found: list[Section] = []
    for root in roots:
        found.extend(_sections(root, root.__name__, _settings_reading(root)))
    return found


def _settings_reading(cls: type[BaseModel]) -> _Reading:
    config: dict[str, Any] = dict(cls.model_config)
    return _Reading(cls, None, config.get("env_prefix") or "", bool(config.get("case_sensitive")))


def _sections(cls: type[BaseModel], path: str, reading: _Reading) -> Iterator[Section]:
    variables: list[Variable] = []
    nested: list[tuple[type[BaseModel], str, _Reading]] = []
    delimiter = cls.model_config.get("env_nested_delimiter") if issubclass(cls, BaseSettings) else None
    for name, info in cls.model_fields.items():
        group = _model_type(info.annotation)
        names = _env_names(name, info, reading)
        if group is not None and issubclass(group, BaseSettings):
            nested.append((group, f"{path}.{name}", _settings_reading(group)))
        elif group is not None and (delimiter or reading.field is not None):
            step = delimiter or str(reading.reader.model_config.get("env_nested_delimiter"))
            field = reading.field or name
            nested.append(
                (group, f"{path}.{name}", _Reading(reading.reader, field, names[0] + step, reading.case_sensitive))
            )
        else:
            variables.append(
                Variable(
                    reader=reading.reader,
                    field=reading.field or name,
                    env_names=names,
                    type=_render_type(info),
                    default=_render_default(info),
                    description=" ".join((info.description or "").split()),
                )
            )
    yield Section(cls, path, tuple(variables))
    for group, group_path, group_reading in nested:
        yield from _sections(group, group_path, group_reading)


def _model_type(annotation: Any) -> type[BaseModel] | None:
    candidates = [arg for arg in get_args(annotation) if arg is not type(None)] if _is_union(annotation) else []
    target = candidates[0] if len(candidates) == 1 else annotation
    return target if inspect.isclass(target) and issubclass(target, BaseModel) else None


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def _env_names(name: str, info: FieldInfo, reading: _Reading) -> tuple[str, ...]:
    alias = info.validation_alias if info.validation_alias is not None else info.alias
    if isinstance(alias, str):
        keys = [alias]
    elif isinstance(alias, AliasChoices):
        keys = [choice if isinstance(choice, str) else str(choice.path[0]) for choice in alias.choices]
    elif isinstance(alias, AliasPath):
        keys = [str(alias.path[0])]
    else:
        keys = []
    # A settings class reads an alias as the whole name; a nested model's key, alias or not, follows the delimiter.
    names = keys if keys and reading.field is None else [reading.prefix + key for key in keys or [name]]
    return tuple(names if reading.case_sensitive else [n.upper() for n in names])


def _render_type(info: FieldInfo) -> str:
    bounds = []
    for constraint in info.metadata:
        for kind, symbol in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            value = getattr(constraint, kind, None)
            if isinstance(constraint, annotated_types.BaseMetadata) and value is not None:
                bounds.append(f"{symbol} {_plain(value)}")
    return ", ".join([_type_name(info.annotation), *bounds])


def _type_name(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return " or ".join(f"`{_plain(arg)}`" for arg in args)
    if _is_union(annotation):
        named = " or ".join(_type_name(arg) for arg in args if arg is not type(None))
        return f"{named}, optional" if type(None) in args else named
    if origin in (list, tuple, set, frozenset, Sequence):
        return f"JSON list of {_type_name(args[0])}" if args else "JSON list"
    if origin is dict or (inspect.isclass(annotation) and issubclass(annotation, BaseModel)):
        return "JSON object"
    if inspect.isclass(annotation) and issubclass(annotation, Enum):
        return " or ".join(f"`{_plain(member.value)}`" for member in annotation)
    names = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _render_default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        if info.default_factory_takes_validated_data:
            return "computed"
        value = info.default_factory()  # type: ignore[call-arg]
    elif info.default is PydanticUndefined:
        return "required"
    else:
        value = info.default
    return "unset" if value is None else f"`{_plain(value)}`"


def _plain(value: Any) -> str:
    """A value as one would write it in the environment."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return _plain(value.value)
    if isinstance(value, PurePath):
        return _shown_path(Path(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        return json.dumps(_jsonable(value), separators=(", ", ": "))
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(item) for item in value]
    if isinstance(value, (PurePath, Enum)):
        return _plain(value)
    return value


def _shown_path(path: Path) -> str:
    if path.is_absolute():
        for base, shown in ((PROJECT_ROOT, ""), (Path.home(), "~/")):
            if path.is_relative_to(base):
                return shown + path.relative_to(base).as_posix()
    return path.as_posix()


def _cell(text: str) -> str:
    return text.replace("|", "\\|") if text else "-"


def _summary(cls: type[BaseModel]) -> str:
    module = inspect.getmodule(cls)
    doc = cls.__dict__.get("__doc__") or (module.__doc__ if module else None) or ""
    return " ".join(doc.strip().split("\n\n", 1)[0].split()).replace("``", "`")


def render(roots: Sequence[type[BaseModel]] = ROOTS) -> str:
    lines = [
        "# Settings",
        "",
        f"<!-- Generated from the pydantic-settings models by `{COMMAND}`; do not edit. -->",
        "",
        "Every setting is an environment variable, read by pydantic-settings. A bad value stops the command at start",
        "with a message that names the setting. Lists are JSON (`'[\"https://app.example\"]'`).",
        "",
    ]
    for section in sections(roots):
        level = "#" * min(2 + section.path.count("."), 4)
        lines += [f"{level} `{section.path}`", "", f"`{section.cls.__module__}.{section.cls.__qualname__}`: "
                  f"{_summary(section.cls)}", ""]  # fmt: skip
        if not section.variables:
            continue
        lines += ["| variable | type | default | what |", "| --- | --- | --- | --- |"]
        for variable in section.variables:
            names = ", ".join(f"`{name}`" for name in variable.env_names)
            cells = (names, variable.type, variable.default, variable.description)
            lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
