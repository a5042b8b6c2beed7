"""docs/cli.md documents every command the CLI has."""

from __future__ import annotations

from pathlib import Path

import click

from publisher.cli import cli

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def commands(group: click.Group) -> list[tuple[str, click.Command]]:
    """Return a group's commands, importing lazily loaded ones."""
    context = click.Context(group)
    found = [(name, group.get_command(context, name)) for name in group.list_commands(context)]
    return [(name, command) for name, command in found if command is not None]


def command_paths(group: click.Group, prefix: str = "publisher") -> list[str]:
    paths: list[str] = []
    for name, command in sorted(commands(group), key=lambda item: item[0]):
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            paths.extend(command_paths(command, path))
        else:
            paths.append(path)
    return paths


def documented_paths(text: str) -> set[str]:
    """Expand headings like "publisher articles list / show / remove" into command paths."""
    paths: set[str] = set()
    for line in text.splitlines():
        if not line.startswith("### "):
            continue
        first, *others = (part.strip() for part in line[4:].split(" / "))
        paths.add(first)
        parent = first.rsplit(" ", 1)[0]
        paths.update(f"{parent} {other}" for other in others)
    return paths


def test_every_command_is_documented() -> None:
    documented = documented_paths(DOC.read_text(encoding="utf-8"))
    assert [path for path in command_paths(cli) if path not in documented] == []


def test_every_option_is_mentioned() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = []

    def walk(group: click.Group, prefix: str) -> None:
        for name, command in commands(group):
            if isinstance(command, click.Group):
                walk(command, f"{prefix} {name}")
                continue
            for param in command.params:
                if isinstance(param, click.Option):
                    for opt in param.opts:
                        if opt.startswith("--") and opt != "--help" and opt not in text:
                            missing.append(f"{prefix} {name} {opt}")

    walk(cli, "publisher")
    assert missing == []


def test_every_command_module_is_reachable() -> None:
    assert "publisher digest send" in command_paths(cli)
    assert "publisher subscribers resend-confirmation" in command_paths(cli)
