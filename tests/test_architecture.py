"""The shape of the code base: apps do not import each other in both directions."""

from __future__ import annotations

import ast
from itertools import combinations
from pathlib import Path

APPS = Path(__file__).resolve().parents[1] / "apps"
# Tenant changes are audited, and the audit log belongs to a tenant: the one pair that may.
ALLOWED_PAIRS = {frozenset({"tenants", "audit"})}


def _imported_apps(app: str) -> set[str]:
    """The other apps that modules of ``app`` import (migrations excluded: they are history)."""
    found: set[str] = set()
    for path in (APPS / app).rglob("*.py"):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                parts = name.split(".")
                if len(parts) > 1 and parts[0] == "apps" and parts[1] != app:
                    found.add(parts[1])
    return found


def test_no_two_apps_import_each_other():
    apps = sorted(p.name for p in APPS.iterdir() if (p / "apps.py").exists())
    imports = {app: _imported_apps(app) for app in apps}
    cycles = [
        f"{a} <-> {b}"
        for a, b in combinations(apps, 2)
        if b in imports[a] and a in imports[b] and frozenset({a, b}) not in ALLOWED_PAIRS
    ]
    assert cycles == [], f"apps that import each other: {cycles}; imports: {imports}"
