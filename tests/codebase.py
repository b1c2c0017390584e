"""The package's modules as the tests see them: import name, source file, folder mapping.

`lemur_corpus` is spread over three repository folders (pyproject's `package-dir`); tests that walk
the code base (regular-expression audits, the import-floor check) walk it through here.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_SETUPTOOLS = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
PACKAGE_DIRS: dict[str, str] = dict(_SETUPTOOLS["package-dir"])
"""Package name -> repository folder: lemur_corpus -> corpus, lemur_corpus.filters -> filters, ..."""
DECLARED_PACKAGES: list[str] = list(_SETUPTOOLS["packages"])
ROOT_PACKAGE = "lemur_corpus"


def module_files() -> dict[str, Path]:
    """Every module of the package (`lemur_corpus.filters.text.c4`) and its file, sorted by name."""
    found: dict[str, Path] = {}
    for package, folder in PACKAGE_DIRS.items():
        base = REPO / folder
        for path in sorted(base.rglob("*.py")):
            relative = path.relative_to(base).with_suffix("")
            parts = [p for p in relative.parts if p != "__init__"]
            # a folder mapped to a package of its own is walked under that name only
            if parts and f"{package}.{parts[0]}" in PACKAGE_DIRS and package != f"{package}.{parts[0]}":
                continue
            found[".".join([package, *parts])] = path
    return dict(sorted(found.items()))


def is_package(name: str) -> bool:
    return module_files()[name].name == "__init__.py"
