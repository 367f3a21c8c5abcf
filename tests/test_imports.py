"""Import rules, checked on the source (AST) so a lazy import counts too:
- ``shared`` and ``scanners`` import neither ``textual``, ``server``, the apps nor ``qc``;
- the apps never import ``server`` or ``qc`` (they speak HTTP/websockets only);
- the server imports neither the apps, ``textual`` nor ``qc`` (the umbrella above it);
- the TUI kit the apps share (``qc_tui``) imports neither ``server``, ``qc`` nor any app;
  the apps may import it;
- the server's domains below ops never import ``server.ops``: what needs a manager's
  attention reaches ops as an ``alert.<kind>`` event."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APPS = {"picker_app", "rider_app", "control_tower"}
FORBIDDEN = {
    "shared": {"server", "textual", "qc", *APPS},
    "scanners": {"server", "textual", "qc", *APPS},
    "picker_app": {"server", "qc"},
    "rider_app": {"server", "qc"},
    "control_tower": {"server", "qc"},
    "server": {"textual", "qc", *APPS},
    "qc_tui": {"server", "qc", *APPS},
}


def imported_modules(path: Path) -> set[str]:
    """Every absolute module a file imports; ``from a import b`` counts as ``a`` and ``a.b``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def imported_roots(path: Path) -> set[str]:
    return {m.split(".")[0] for m in imported_modules(path)}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_import_rules(package: str) -> None:
    files = list((ROOT / package).rglob("*.py"))
    assert files, f"{package} has no modules"
    offenders = {
        str(f.relative_to(ROOT)): sorted(imported_roots(f) & FORBIDDEN[package]) for f in files
    }
    assert {f: bad for f, bad in offenders.items() if bad} == {}


BELOW_OPS = (
    "catalog",
    "delivery",
    "events",
    "forecast",
    "identity",
    "inventory",
    "orders",
    "payments",
    "picking",
    "stores",
)


@pytest.mark.parametrize("domain", BELOW_OPS)
def test_domain_below_ops_does_not_import_it(domain: str) -> None:
    offenders = {
        str(f.relative_to(ROOT)): sorted(
            m for m in imported_modules(f) if m == "server.ops" or m.startswith("server.ops.")
        )
        for f in (ROOT / "server" / domain).rglob("*.py")
    }
    assert {f: bad for f, bad in offenders.items() if bad} == {}


def test_checker_catches_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    from server.app import create_app\n")
    assert "server" in imported_roots(sample)
    sample.write_text("from server import ops\n")
    assert "server.ops" in imported_modules(sample)
