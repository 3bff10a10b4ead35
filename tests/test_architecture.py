"""The import rules that keep the architecture what docs/architecture.md says it is.

Every module of the runtime packages (``aicollect``, ``services``, ``gateway``) and of the
development tools (``emulators``) is parsed, and each ``import`` (at module level or inside
a function: a lazy import still runs) is recorded. The rules hold for what a module
imports through other modules of the repository too, not only for what it names itself:
the gateway importing a helper that imports SQLAlchemy imports SQLAlchemy.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import pytest

from tests.helpers.paths import REPO_ROOT as ROOT

RUNTIME = ("aicollect", "services", "gateway")
PACKAGES = (*RUNTIME, "emulators")

DATABASE = ("aicollect.db", "sqlalchemy", "asyncpg", "alembic")
# Entry points that start another part of the system by importing it: the ``aicollect``
# command (aicollect/cli.py starts any process) and Alembic's environment (which needs
# every service's tables).
SHARED_ENTRY_POINTS = ("aicollect.cli", "aicollect.db.migrations.env")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base.pop()
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


@cache
def direct_imports(module: str) -> frozenset[str]:
    """Every module ``module`` imports by name (with ``from a import b``: ``a.b`` when that
    is a module of the repository, else ``a``)."""
    path = _modules()[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, path.name == "__init__.py", node)
            names.add(target)
            for alias in node.names:
                if f"{target}.{alias.name}" in _modules():
                    names.add(f"{target}.{alias.name}")
    return frozenset(name for name in names if name)


def _with_parents(name: str) -> Iterable[str]:
    """Importing ``a.b.c`` runs ``a`` and ``a.b`` first."""
    parts = name.split(".")
    for end in range(1, len(parts) + 1):
        yield ".".join(parts[:end])


@cache
def all_imports(module: str) -> frozenset[str]:
    """``module``'s imports and, for those in the repository, theirs, and so on."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        for name in direct_imports(todo.pop()):
            for each in _with_parents(name):
                if each not in seen:
                    seen.add(each)
                    if each in _modules():
                        todo.append(each)
    return frozenset(seen)


def _within(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def _modules_of(*packages: str) -> list[str]:
    return [name for name in _modules() if _within(name, packages)]


def _violations(modules: Iterable[str], forbidden: Iterable[str], *, direct: bool) -> list[str]:
    forbidden = tuple(forbidden)
    out = []
    for module in modules:
        imported = direct_imports(module) if direct else all_imports(module)
        bad = sorted(name for name in imported if _within(name, forbidden))
        if bad:
            out.append(f"{module} -> {', '.join(bad)}")
    return out


def test_the_rules_see_every_package() -> None:
    """A rule over no modules holds trivially; this keeps the walk honest."""
    for package in PACKAGES:
        assert len(_modules_of(package)) > 1, package
    assert "services.integration.server" in _modules()
    assert "aicollect.db" in all_imports("services.matcher.__main__")
    assert "sqlalchemy" in all_imports("services.matcher.__main__")


def test_the_gateway_never_reaches_the_database_or_a_service() -> None:
    """The gateway talks to the services over gRPC only: no database layer, no service code,
    not even through a shared helper."""
    assert _violations(_modules_of("gateway"), (*DATABASE, "services"), direct=False) == []


@pytest.mark.parametrize(
    ("service", "other"),
    [("services.integration", "services.matcher"), ("services.matcher", "services.integration")],
)
def test_the_services_never_import_each_other(service: str, other: str) -> None:
    """Each service owns its schema and logic; they meet over gRPC (and both may use the
    shared ``aicollect`` library)."""
    assert _violations(_modules_of(service), (other,), direct=False) == []


def test_the_shared_library_imports_no_service() -> None:
    """``aicollect`` is the library under every process; only its entry points import the
    processes they start."""
    library = [m for m in _modules_of("aicollect") if not _within(m, SHARED_ENTRY_POINTS)]
    assert _violations(library, ("services", "gateway"), direct=True) == []


def test_only_the_integration_service_reads_tokens_or_keys() -> None:
    """``aicollect.crypto`` (the token cipher and the key ring) is imported by the
    integration service only."""
    others = [m for m in _modules() if not _within(m, ("services.integration", "aicollect.crypto"))]
    assert _violations(others, ("aicollect.crypto",), direct=True) == []
    # and nothing that reaches it goes around the integration service
    around = [m for m in others if not _within(m, SHARED_ENTRY_POINTS)]
    reaching = _violations(around, ("aicollect.crypto",), direct=False)
    assert reaching == []


def test_runtime_code_never_imports_an_emulator_or_test_code() -> None:
    """The emulators are development tools, absent from the production image: the runtime
    starts one as a child process (``python -m emulators.qbo``) and never imports it."""
    runtime = _modules_of(*RUNTIME)
    assert _violations(runtime, ("emulators", "examples", "tests", "bench"), direct=False) == []


# The matcher's decision table: pure functions of frozen values (docs/matching.md).
PURE_TABLE = (
    "services.matcher.decisions.rules",
    "services.matcher.decisions.values",
    "services.matcher.decisions.outcomes",
)
# What a pure function may not reach: storage, the network, the clock, chance.
IMPURE = (
    *DATABASE,
    "services.matcher.models",
    "services.matcher.journal",
    "services.matcher.decisions.snapshot",
    "services.matcher.decisions.effects",
    "asyncio",
    "grpc",
    "aiohttp",
    "random",
    "secrets",
    "uuid",
    "time",
    "os",
)
CLOCK_READS = ("now", "utcnow", "today", "time", "monotonic", "perf_counter")


def test_the_matching_table_is_pure() -> None:
    """The matching rules read a snapshot and return effects: no module of the table reaches
    the database, the network, the clock or chance, even through a helper, and none reads
    the time (it is passed in)."""
    table = _modules_of(*PURE_TABLE)
    assert len(table) > 5, table
    assert _violations(table, IMPURE, direct=False) == []
    reads = []
    for module in table:
        path = _modules()[module]
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in CLOCK_READS
            ):
                reads.append(f"{module}:{node.lineno} .{node.func.attr}()")
    assert reads == []


def _dockerfile_stages() -> list[tuple[str, str, list[str]]]:
    """(name, base, instructions) of each Dockerfile stage, in order."""
    stages: list[tuple[str, str, list[str]]] = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("FROM "):
            words = line.split()
            stages.append((words[-1], words[1], []))
        elif stages and line.strip() and not line.startswith("#"):
            stages[-1][2].append(line)
    return stages


def test_the_production_image_holds_no_emulator() -> None:
    """What ``docker build .`` builds (the last stage, and the stages it is built on) copies
    no emulator; the ``emulator`` target does."""
    stages = {name: (base, lines) for name, base, lines in _dockerfile_stages()}
    production = [_dockerfile_stages()[-1][0]]
    while stages[production[-1]][0] in stages:
        production.append(stages[production[-1]][0])
    assert "emulator" not in production, production
    copied = [line for name in production for line in stages[name][1]]
    assert [line for line in copied if "emulators" in line] == []
    assert any(line.startswith("COPY emulators") for line in stages["emulator"][1])


def test_no_test_module_imports_another() -> None:
    """Shared test code lives in a fixture (conftest.py) or in tests/helpers/, so that a test
    module can move or go without breaking another."""
    offenders = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.startswith("tests.") and name.rsplit(".", 1)[-1].startswith("test_"):
                    offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []


def test_the_installed_package_holds_the_runtime_only() -> None:
    """The wheel (and so the production image) ships ``aicollect``, ``services`` and
    ``gateway``; a development checkout finds ``emulators`` through the path entry
    scripts/bootstrap.sh adds to the virtualenv."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    assert sorted(pattern.rstrip("*") for pattern in include) == sorted(RUNTIME)


def test_only_the_embedded_database_picks_a_port_before_binding_it() -> None:
    """Choosing a free port and binding it later leaves a window for another program to take
    it; every process binds port 0 and reports what it got (aicollect/handshake.py), and a
    test that needs an address where nothing listens takes ``refused_addr``."""
    users = []
    for root in (*PACKAGES, "tests", "bench"):
        for path in sorted((ROOT / root).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Name | ast.Attribute):
                    name = node.id if isinstance(node, ast.Name) else node.attr
                    if name == "free_port":
                        users.append(str(path.relative_to(ROOT)))
    assert set(users) == {"aicollect/db/embedded.py"}


MAX_MODULE_LINES = 600


def test_every_hand_written_module_stays_under_600_lines() -> None:
    """A module that long holds more than one idea; split it along them. The emulators
    (written as Intuit's and Xero's documentation is laid out) and the generated protobuf
    code are left out."""
    tops = [
        top
        for top in ROOT.iterdir()
        if top.is_dir() and not top.name.startswith(".") and top.name != "emulators"
    ]
    too_long = [
        f"{path.relative_to(ROOT)}: {lines}"
        for top in tops
        for path in sorted(top.rglob("*.py"))
        if not path.name.endswith(("_pb2.py", "_pb2_grpc.py"))
        and (lines := len(path.read_text().splitlines())) >= MAX_MODULE_LINES
    ]
    assert too_long == []
