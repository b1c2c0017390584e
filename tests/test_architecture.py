"""The layered house (docs/architecture.md), kept so by reading every module's imports.

Floors, bottom to top: 0 ground (model, errors, config base, I/O), 1 filters (pure), 2 build model
(the composed config, sources, manifest, audit), 3 pipelines (Beam), 4 CLI. A module imports from its
own floor or below, never above; no two modules import each other, even through others; one import
namespace; no module over 600 lines. Imports inside functions count like any other: hiding an import
in a function hides its cost at start-up, not its direction.
"""

from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
import tokenize
import zipfile
from pathlib import Path

import pytest

from tests.codebase import DECLARED_PACKAGES, PACKAGE_DIRS, REPO, ROOT_PACKAGE, module_files

FLOOR_NAMES = ("ground", "filters", "build model", "pipelines", "CLI")
FLOORS: dict[str, int] = {
    # 0 ground: the document model, errors, config base, I/O, and pure arithmetic on them
    "lemur_corpus": 0, "lemur_corpus.errors": 0, "lemur_corpus.configbase": 0, "lemur_corpus.document": 0,
    "lemur_corpus.io": 0, "lemur_corpus.accounting": 0, "lemur_corpus.normalize": 0, "lemur_corpus.notebooks": 0,
    "lemur_corpus.buckets": 0, "lemur_corpus.lemur": 0, "lemur_corpus.shards": 0, "lemur_corpus.tokenizer": 0,
    "lemur_corpus.mixture": 0, "lemur_corpus.variants": 0, "lemur_corpus.dedup": 0, "lemur_corpus.folders": 0,
    "lemur_corpus.token_spill": 0, "lemur_corpus.partial_pools": 0,
    # 1 filters: small pure functions returning verdicts
    "lemur_corpus.filters": 1,
    # 2 build model: the whole config (it composes the filters' configs), readers, manifest, audit
    "lemur_corpus.config": 2, "lemur_corpus.defaults": 2, "lemur_corpus.sources": 2, "lemur_corpus.manifest": 2,
    "lemur_corpus.audit": 2, "lemur_corpus.report": 2, "lemur_corpus.summary": 2,
    # 3 pipelines: Beam composition
    "lemur_corpus.pipelines": 3,
    # 4 the command line
    "lemur_corpus.cli": 4, "lemur_corpus.commands": 4,
}
"""A module's floor is that of its longest listed prefix (a package lists all of its modules)."""

MAX_LINES = 600
OLD_TOP_LEVEL = ("corpus", "filters", "pipelines")


def floor_of(module: str) -> int | None:
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        if (prefix := ".".join(parts[:end])) in FLOORS and (end > 1 or module == ROOT_PACKAGE):
            return FLOORS[prefix]
    return None


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    """The absolute module an ImportFrom names (relative imports resolved against `module`)."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The modules `module` imports (anywhere in the file), of any package."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node, path.name == "__init__.py")
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    return found


def _graph() -> dict[str, set[str]]:
    files = module_files()
    known = set(files)
    return {name: {t for t in imports_of(name, path, known) if t in known and t != name}
            for name, path in files.items()}


def test_every_module_is_on_a_floor() -> None:
    unplaced = [name for name in module_files() if floor_of(name) is None]
    assert not unplaced, f"place these in FLOORS here and in docs/architecture.md: {unplaced}"


def test_imports_only_run_down() -> None:
    upward = []
    for module, targets in _graph().items():
        for target in sorted(targets):
            source_floor, target_floor = floor_of(module), floor_of(target)
            if source_floor is not None and target_floor is not None and target_floor > source_floor:
                upward.append(f"{module} ({FLOOR_NAMES[source_floor]}) imports {target} ({FLOOR_NAMES[target_floor]})")
    assert not upward, "imports that run back up:\n" + "\n".join(upward)


def test_no_import_circle() -> None:
    graph = _graph()
    # Tarjan's strongly connected components: any component of two or more modules is a circle
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert not circles, f"import circles: {circles}"


def test_one_import_namespace() -> None:
    assert all(p == ROOT_PACKAGE or p.startswith(f"{ROOT_PACKAGE}.") for p in DECLARED_PACKAGES)
    packages = sorted(name for name, path in module_files().items() if path.name == "__init__.py")
    assert packages == sorted(DECLARED_PACKAGES), "pyproject's [tool.setuptools] packages must list every package"
    stray = []
    for path in sorted(REPO.glob("*/**/*.py")):
        top = path.parts[len(REPO.parts)]
        if top.startswith(".") or top == "build":  # virtualenvs, caches, build outputs: not ours
            continue
        for node in ast.walk(ast.parse(path.read_bytes())):  # bytes: a file may declare its own encoding
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            stray += [f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] in OLD_TOP_LEVEL]
    assert not stray, f"imports of the old top-level names: {stray}"


def test_no_module_is_over_600_lines() -> None:
    long = {name: n for name, path in module_files().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"split these along their parts: {long}"


def test_filters_and_the_ground_floor_import_without_beam_or_upper_floors() -> None:
    """'Filters are pure' holds at import time: importing every filter and ground module in a fresh
    interpreter loads neither Apache Beam nor any module of a higher floor."""
    low = [name for name in module_files() if (floor_of(name) or 0) <= 1]
    script = ("import importlib, sys\n"
              f"for name in {low!r}:\n    importlib.import_module(name)\n"
              "print('\\n'.join(sorted(sys.modules)))\n")
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                            cwd=REPO).stdout.split()
    assert not [m for m in loaded if m.split(".")[0] == "apache_beam"], "a filter or ground module imports Beam"
    above = [m for m in loaded if m.startswith(f"{ROOT_PACKAGE}.") and (floor_of(m) or 0) > 1]
    assert not above, f"loaded from a higher floor: {above}"


@pytest.mark.slow
def test_the_wheel_installs_one_top_level_name(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(REPO)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("lemur_corpus-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {ROOT_PACKAGE}
    for package, folder in PACKAGE_DIRS.items():  # every module of every folder is in the wheel
        for path in (REPO / folder).rglob("*.py"):
            inner = path.relative_to(REPO / folder).as_posix()
            assert f"{package.replace('.', '/')}/{inner}" in names, inner
    assert f"{ROOT_PACKAGE}/py.typed" in names


TYPE_IGNORE = re.compile(r"type:\s*ignore\b(?:\[[^\]]*\])?(?P<after>.*)")


def test_every_type_ignore_says_why() -> None:
    """A `# type: ignore[code]` silences mypy for its line: the same line says why, in a comment of its
    own after it (`# type: ignore[code]  # why`), so the next reader can tell whether it still holds."""
    unexplained = []
    for path in module_files().values():
        source = path.read_text(encoding="utf-8")
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type != tokenize.COMMENT:
                continue
            match = TYPE_IGNORE.search(token.string)
            if match and not re.match(r"\s*#\s*\S", match["after"]):
                unexplained.append(f"{path.relative_to(REPO)}:{token.start[0]}: {token.string}")
    assert not unexplained, "a type: ignore without its reason:\n" + "\n".join(unexplained)
