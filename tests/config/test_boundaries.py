"""The dependency rules of STYLE.md that imports show: the core (inbox, sync, connections) never imports the
api app (it records integration events through inbox.integrations, which the api app subscribes to), decoding
imports no models, the decoded records import no neonize, and only the statements modules branch on the
database. Read from the source, so a lazy import inside a function counts too."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def sources(*packages: str):
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def imports_of(path: Path, prefix: str) -> list[str]:
    return sorted(m for m in imported_modules(path) if m == prefix or m.startswith(prefix + "."))


def test_the_core_never_imports_the_api_app():
    offenders = {str(p.relative_to(ROOT)): imports_of(p, "api") for p in sources("inbox", "sync", "connections")}
    assert {p: found for p, found in offenders.items() if found} == {}


def test_the_api_app_hears_the_cores_events_through_the_registered_recorder():
    from api import webhooks
    from inbox import integrations

    assert webhooks.record_events in integrations._recorders
    assert webhooks.EVENTS is integrations.EVENTS  # one list of event names, the core's


@pytest.mark.parametrize(("module", "forbidden"), [
    ("sync/decode.py", ("inbox", "sync.ingest", "sync.models", "django.db")),
    ("sync/records.py", ("neonize", "inbox", "django")),
    ("inbox/integrations.py", ("api", "django")),
])
def test_module_keeps_its_boundary(module, forbidden):
    path = ROOT / module
    assert [m for prefix in forbidden for m in imports_of(path, prefix)] == []


def test_the_boundary_check_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "lazy.py"
    source.write_text("def f():\n    from api import webhooks\n    import api.tasks\n")
    assert imports_of(source, "api") == ["api", "api.tasks"]


def vendor_comparisons(path: Path) -> list[int]:
    """Lines that compare a connection's ``vendor`` (a branch on the database); naming it in a log is fine."""
    return sorted(node.lineno for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
                  if isinstance(node, ast.Compare)
                  and any(isinstance(side, ast.Attribute) and side.attr == "vendor"
                          for side in (node.left, *node.comparators)))


def test_only_the_statements_modules_branch_on_the_database():
    """Domain code reads as domain steps: each database-specific statement and its SQLite fallback live in
    its app's statements module (sync, inbox, api); migrations keep their own checks."""
    offenders = {str(p.relative_to(ROOT)): vendor_comparisons(p)
                 for p in sources("inbox", "sync", "connections", "api", "config") if p.name != "statements.py"}
    assert {p: lines for p, lines in offenders.items() if lines} == {}
    assert vendor_comparisons(ROOT / "sync" / "statements.py")  # the check sees a branch where there is one
