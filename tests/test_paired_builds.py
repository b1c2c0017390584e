"""`benchmarks/paired_builds.py` builds the versions it names: a revision's package, laid out as the
installed one, imports from where it was exported (not from the checkout), with the schema beside it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.paired_builds import WORKTREE, export_version

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not (REPO / ".git").exists(), reason="not a git checkout: no revision to export")


def imported_from(package: Path) -> list[str]:
    """Where a fresh interpreter with `package` first on PYTHONPATH finds the package, a subpackage
    and the manifest schema."""
    probe = ("import os, lemur_corpus, lemur_corpus.pipelines.build as b, lemur_corpus.manifest as m; "
             "print(lemur_corpus.__file__); print(b.__file__); print(os.path.exists(m.SCHEMA_PATH))")
    done = subprocess.run([sys.executable, "-c", probe], env={**os.environ, "PYTHONPATH": str(package)},
                          capture_output=True, text=True, check=True)
    return done.stdout.split()


@pytest.mark.parametrize("version", ["HEAD", WORKTREE])
def test_an_exported_version_is_the_package_imported(tmp_path: Path, version: str) -> None:
    package = export_version(version, tmp_path / "v")
    assert not list(package.rglob("__pycache__"))  # the checkout's compiled files stay behind
    init, build, schema_found = imported_from(package)
    assert Path(init).is_relative_to(package) and Path(build).is_relative_to(package)
    assert schema_found == "True"
    assert (package / "lemur_corpus" / "filters" / "decontam" / "data").is_dir()  # package data comes along


def test_an_unknown_revision_is_one_line_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no-such-revision"):
        export_version("no-such-revision", tmp_path / "v")
