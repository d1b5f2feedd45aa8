"""The import rules of STYLE.md C2, checked on the source: dependencies point one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ("supportswarm", "workers", "embeddings", "web")


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in PROJECT}


SOURCES = {
    _module(p): _imports(p)
    for top in ("supportswarm", "workers", "embeddings")
    for p in sorted((ROOT / top).rglob("*.py"))
}


def _violations(rule: str, modules: list[str], forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    bad = []
    for module in modules:
        for name in SOURCES[module]:
            if name.startswith(forbidden) and not name.startswith(allowed) and not name.startswith(module):
                bad.append(f"{rule}: {module} imports {name}")
    return bad


def _matching(predicate: str) -> list[str]:
    return [m for m in SOURCES if predicate in m]


@pytest.mark.parametrize(
    ("rule", "modules", "forbidden", "allowed"),
    [
        ("leaf modules import nothing of ours",
         ["supportswarm.settings", "supportswarm.errors", "supportswarm.realtime.protocol",
          *[m for m in SOURCES if m.startswith("embeddings")]],
         PROJECT, ("embeddings",)),
        ("models import no services, routes or other models", _matching(".models"), PROJECT, ()),
        ("brokers import only the realtime package",
         ["supportswarm.realtime.broker", "supportswarm.realtime.memory", "supportswarm.realtime.redis"],
         PROJECT, ("supportswarm.realtime.protocol", "supportswarm.realtime.broker", "supportswarm.realtime.memory")),
        ("services never import routes, the app, the hub or workers", _matching("services"),
         ("workers", "supportswarm.app", "supportswarm.realtime.hub", *_matching(".routes")), ()),
        ("routes never import workers", _matching(".routes") + _matching(".ws"), ("workers",), ()),
        ("the app never imports workers", ["supportswarm.app"], ("workers",), ()),
        ("workers never import the app, routes or the hub", [m for m in SOURCES if m.startswith("workers")],
         ("supportswarm.app", "supportswarm.realtime.hub", *_matching(".routes")), ()),
    ],
)
def test_import_rule(rule: str, modules: list[str], forbidden: tuple[str, ...], allowed: tuple[str, ...]) -> None:
    assert _violations(rule, modules, forbidden, allowed) == []


def test_only_entry_points_import_the_app() -> None:
    importers = sorted(m for m, names in SOURCES.items() if "supportswarm.app" in names and m != "supportswarm.app")
    assert importers == ["supportswarm.cli"]
