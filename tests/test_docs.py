"""docs/configuration.md documents every setting, with its true default and a meaning."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from publisher.config import Settings, SourceSettings, setting_names
from publisher.settings_schema import Section, SettingField

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
ROW = re.compile(
    r"^\|\s*`(?P<name>[a-z_]+\.[a-z_]+)`\s*\|\s*(?P<default>.*?)\s*\|\s*(?P<meaning>.*)\|\s*$"
)


def documented() -> dict[str, tuple[str, str]]:
    """Return {setting: (default cell, meaning cell)} from the doc's tables."""
    rows: dict[str, tuple[str, str]] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            assert match["name"] not in rows, f"{match['name']} is documented twice"
            rows[match["name"]] = (match["default"], match["meaning"].strip())
    return rows


def field_of(name: str) -> tuple[type[Section], SettingField]:
    """Return the section class and the setting behind ``section.key``."""
    section, key = name.split(".")
    sections = {setting.key: setting.section for setting in Settings.setting_fields()}
    model = sections[section]
    assert model is not None
    for setting in model.setting_fields():
        if setting.key == key:
            return model, setting
    raise AssertionError(f"no field {name}")


def test_every_setting_is_documented() -> None:
    rows = documented()
    missing = [name for name in setting_names() if name not in rows]
    assert not missing, f"add these settings to docs/configuration.md: {missing}"
    stale = sorted(set(rows) - set(setting_names()))
    assert not stale, f"docs/configuration.md documents settings that do not exist: {stale}"
    for name, (_, meaning) in rows.items():
        assert len(meaning) > 15, f"{name}: say what it means"


@pytest.mark.parametrize("name", setting_names())
def test_documented_default_is_the_real_default(name: str) -> None:
    cell, _ = documented().get(name, ("", ""))
    model, setting = field_of(name)
    if setting.required:
        assert cell == "(required)", name
        return
    if setting.default() is None:
        assert cell == "(none)", name
        return
    literal = re.fullmatch(r"`(.+)`", cell)
    assert literal, f"{name}: write the default as a TOML value in backticks, got {cell!r}"
    value = tomllib.loads(f"value = {literal[1]}")["value"]
    # Read the documented value exactly as the settings loader would.
    required = {"url": "https://example.org/feed.xml"} if model is SourceSettings else {}
    key = name.split(".")[1]
    section = model.from_mapping({**required, key: value})
    assert getattr(section, setting.name) == setting.default(), name
