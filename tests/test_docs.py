"""The README documents what the code offers: settings, CLI commands, protocol frames and events."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from supportswarm.cli import build_parser
from supportswarm.realtime.protocol import CloseCode, EventType, FrameType
from supportswarm.settings import ENV_NAMES

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


@pytest.mark.parametrize("variable", sorted(ENV_NAMES.values()))
def test_every_setting_is_in_the_configuration_table(variable: str) -> None:
    assert f"| `{variable}`" in README


def _subcommands() -> list[str]:
    actions = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(actions[0].choices)


@pytest.mark.parametrize("command", _subcommands())
def test_every_cli_command_is_documented(command: str) -> None:
    assert f"supportswarm {command}" in README


@pytest.mark.parametrize("name", [f.value for f in FrameType] + [e.value for e in EventType])
def test_every_frame_and_event_type_is_in_the_swarm_protocol_section(name: str) -> None:
    protocol = README.split("## Swarm protocol", 1)[1]
    assert f"`{name}`" in protocol


@pytest.mark.parametrize("code", [int(c) for c in CloseCode])
def test_every_close_code_is_documented(code: int) -> None:
    assert f"| {code} |" in README.split("## Swarm protocol", 1)[1]
