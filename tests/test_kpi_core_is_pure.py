"""The KPI math in stream/kpi/ imports no Faust, Kafka, Prometheus, Redis or HTTP library, and what a
production process runs imports none of the local demo and test tooling (stream/local).

Checked statically with `ast` (imports at any depth, including inside functions and `if TYPE_CHECKING`),
and transitively through the project modules stream/kpi imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
KPI_DIR = REPO_ROOT / "stream" / "kpi"
FORBIDDEN = {
    "faust", "mode", "aiokafka", "kafka", "confluent_kafka", "prometheus_client", "aiohttp", "redis",
    "http", "urllib", "urllib3", "requests", "httpx", "aiohttp_jinja2", "websockets",
}


def imported_modules(path: Path, package: str | None = None) -> set[str]:
    """Absolute names of every module `path` imports (relative imports resolved against its package)."""
    if package is None:
        package = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)  # `from x import submodule`
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__" and node.args:
            if isinstance(node.args[0], ast.Constant):
                names.add(str(node.args[0].value))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module" and node.args:
            if isinstance(node.args[0], ast.Constant):
                names.add(str(node.args[0].value))
    return names


def project_file(module: str) -> Path | None:
    parts = module.split(".")
    for candidate in (REPO_ROOT.joinpath(*parts).with_suffix(".py"), REPO_ROOT.joinpath(*parts, "__init__.py")):
        if candidate.is_file():
            return candidate
    return None


def closure(start: Path) -> dict[Path, set[str]]:
    """Every project module reachable from `start` through imports, with its imports."""
    seen: dict[Path, set[str]] = {}
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen[path] = imported_modules(path)
        todo += [f for m in seen[path] if m.startswith("stream") and (f := project_file(m)) is not None]
    return seen


KPI_FILES = sorted(KPI_DIR.glob("*.py"))


def test_kpi_package_is_found():
    assert {p.name for p in KPI_FILES} >= {"catalogue.py", "parts.py", "engine.py", "facts.py", "snapshot.py", "store.py",
                                           "windows.py"}


@pytest.mark.parametrize("path", KPI_FILES, ids=[p.name for p in KPI_FILES])
def test_kpi_module_imports_no_io_library(path):
    offenders = {
        f"{file.relative_to(REPO_ROOT)} imports {name}"
        for file, names in closure(path).items()
        for name in names
        if name.split(".")[0] in FORBIDDEN
    }
    assert not offenders, sorted(offenders)


SHIPPED_FILES = sorted(p for d in ("worker", "ingest", "kpi") for p in (REPO_ROOT / "stream" / d).rglob("*.py"))


@pytest.mark.parametrize("path", SHIPPED_FILES, ids=[str(p.relative_to(REPO_ROOT)) for p in SHIPPED_FILES])
def test_shipped_modules_import_no_local_tooling(path):
    offenders = {
        f"{file.relative_to(REPO_ROOT)} imports {name}"
        for file, names in closure(path).items()
        for name in names
        if name.startswith("stream.local")
    }
    assert not offenders, sorted(offenders)


def test_the_checker_catches_offenders(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import faust\n"
        "from prometheus_client import Counter\n"
        "from urllib.request import urlopen\n"
        "from ..worker import web\n"
        "def f():\n"
        "    import aiohttp.web\n"
        "    return __import__('redis')\n"
    )
    names = imported_modules(sample, package="stream.kpi")
    assert {"faust", "prometheus_client", "urllib.request", "aiohttp.web", "redis", "stream.worker.web"} <= names
    assert {n.split(".")[0] for n in names} & FORBIDDEN == {"faust", "prometheus_client", "urllib", "aiohttp", "redis"}
    assert project_file("stream.worker.web") is not None  # and a relative import of it would be followed
