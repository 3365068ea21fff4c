"""docs/settings.md is what ops.settings_doc renders from the settings models, and names variables they read."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from ops.settings_doc import COMMAND, Variable, render, sections

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("model", "service", "ops", "loadtest", "digits_cli")


def test_docs_settings_md_is_up_to_date() -> None:
    written = (ROOT / "docs" / "settings.md").read_text()
    assert written == render(), f"docs/settings.md differs from the settings models: run `{COMMAND}`"


def settings_classes_in_the_source() -> set[str]:
    """Names of the classes that derive, directly or through one another, from BaseSettings."""
    bases: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef):
                    names = {base.id if isinstance(base, ast.Name) else ast.unparse(base) for base in node.bases}
                    bases.setdefault(node.name, set()).update(names)
    found = {"BaseSettings"}
    while grown := {name for name, parents in bases.items() if parents & found} - found:
        found |= grown
    return {name for name in found - {"BaseSettings"} if not name.startswith("_")}  # private: abstract bases


def test_every_settings_class_in_the_source_is_rendered() -> None:
    rendered = {section.cls.__name__ for section in sections()}
    missing = settings_classes_in_the_source() - rendered
    assert not missing, f"add these to ops.settings_doc.ROOTS (or make them fields of one): {sorted(missing)}"


def sample_value(variable: Variable) -> str:
    if variable.type.startswith("JSON list"):
        return "[]"
    return "{}" if variable.type.startswith("JSON object") else "1"


def assert_read_under_its_names(variable: Variable, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in variable.env_names:
        monkeypatch.delenv(name, raising=False)
    assert variable.field not in EnvSettingsSource(variable.reader)()
    for name in variable.env_names:
        with monkeypatch.context() as env:
            env.setenv(name, sample_value(variable))
            assert variable.field in EnvSettingsSource(variable.reader)(), f"{name} does not set {variable.field}"


@pytest.mark.parametrize("variable", [v for s in sections() for v in s.variables], ids=lambda v: v.env_names[0])
def test_every_variable_is_read_under_its_documented_name(variable: Variable, monkeypatch: pytest.MonkeyPatch) -> None:
    assert_read_under_its_names(variable, monkeypatch)


class Batching(BaseSettings):
    """A group of settings with its own prefix, as a field of the settings it belongs to."""

    model_config = SettingsConfigDict(env_prefix="DIGITS_")
    max_batch_size: int = Field(64, ge=1, description="images in one model call")


class Limits(BaseModel):
    """A plain model, read through its parent's nested delimiter."""

    max_body_bytes: int = 1024
    header_timeout_seconds: float | None = Field(None, alias="head_timeout")


class Grouped(BaseSettings):
    """Settings made of groups."""

    model_config = SettingsConfigDict(env_prefix="DIGITS_", env_nested_delimiter="__")
    host: str = "127.0.0.1"
    batching: Batching = Field(default_factory=Batching)
    limits: Limits = Field(default_factory=Limits)


def test_groups_get_a_section_each_with_the_names_pydantic_settings_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    found = sections([Grouped])
    assert [(s.path, [v.env_names for v in s.variables]) for s in found] == [
        ("Grouped", [("DIGITS_HOST",)]),
        ("Grouped.batching", [("DIGITS_MAX_BATCH_SIZE",)]),
        ("Grouped.limits", [("DIGITS_LIMITS__MAX_BODY_BYTES",), ("DIGITS_LIMITS__HEAD_TIMEOUT",)]),
    ]
    batch_size = found[1].variables[0]
    assert (batch_size.type, batch_size.default, batch_size.description) == (
        "integer, >= 1",
        "`64`",
        "images in one model call",
    )
    for variable in found[0].variables + found[1].variables + found[2].variables:
        assert_read_under_its_names(variable, monkeypatch)
    monkeypatch.setenv("DIGITS_LIMITS__HEAD_TIMEOUT", "2.5")
    monkeypatch.setenv("DIGITS_LIMITS__MAX_BODY_BYTES", "2048")
    assert Grouped().limits == Limits(max_body_bytes=2048, head_timeout=2.5)
    assert "### `Grouped.batching`" in render([Grouped])
