"""Shared test helpers: where the real sample data lives, and how to read it.

The real data (`../shared/data` beside the repository) is third-party text for testing only; it is
never copied into the repository. Tests that need it skip with the reason when it is absent (a user's
clone); CI always has it. `LEMUR_SHARED_DATA` points elsewhere if needed.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import settings

from lemur_corpus.io import iter_lines

# Property tests draw the same examples on every run and machine (a derandomized seed, no example
# database carried between runs), so `make test` passes or fails the same way ten runs out of ten.
# HYPOTHESIS_PROFILE=explore draws fresh random examples, for hunting new counterexamples by hand.
settings.register_profile("repeatable", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LEMUR_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_path(*parts: str) -> Path:
    """The path of a file under the shared data folder; skips the test when it is not there."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real sample data not found at {path} (set LEMUR_SHARED_DATA); CI always has it")
    return path


def read_jsonl(path: Path | str) -> list[dict[str, Any]]:
    """The records of a .jsonl, .jsonl.gz or .jsonl.zst file, read as the package reads JSON Lines
    (`lemur_corpus.io.iter_lines`: only `\\n` ends a record)."""
    return [json.loads(line) for _, line in iter_lines(str(path)) if line.strip()]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"real sample data not found at {SHARED_DATA}; CI always has it")
    return SHARED_DATA


@pytest.fixture(scope="session")
def small_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real build, made once per session: the embedded default's mixture (Table 8 weights,
    empty sources redistributed) over a capped slice of the local Python installation, in a few
    shards. Read-only: tests that corrupt it copy it first (`shutil.copytree`)."""
    from lemur_corpus.config import (
        BuildConfig,
        InputConfig,
        LocalEnvConfig,
        MixtureConfig,
        ShardConfig,
        lemur_mixture_sources,
    )
    from lemur_corpus.defaults import local_text_filters
    from lemur_corpus.pipelines.build import run_build

    config = BuildConfig(
        name="small",
        inputs=[InputConfig(name="local", format="local_env", text_source="refinedweb",
                            local_env=LocalEnvConfig(max_files_per_bucket=40, max_text_files=80,
                                                     max_file_bytes=40_000))],
        filters=local_text_filters(),
        mixture=MixtureConfig(sources=lemur_mixture_sources(), on_empty_source="redistribute", min_pool_tokens=2_000),
        shards=ShardConfig(target_tokens=150_000),
    )
    out = tmp_path_factory.mktemp("small_build")
    run_build(config, str(out))
    return out


@pytest.fixture(scope="session")
def dask_cluster():  # type: ignore[no-untyped-def]
    """A dask.distributed LocalCluster of 2 single-threaded worker processes, shared by the session
    (the runner matrix and the fault tests); builds reach it with `--dask_client_address`."""
    import logging

    distributed = pytest.importorskip("dask.distributed")
    logging.getLogger("distributed").setLevel(logging.ERROR)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        yield cluster


def executed_lines(run: Callable[[], object], modules: Iterable[ModuleType]) -> int:
    """Python lines executed inside `modules` while `run` runs: a measure of work that, unlike a clock,
    is the same on every machine and under any load (the adversarial tests compare sizes n and kn)."""
    files = {module.__file__ for module in modules}
    count = 0

    def tracer(frame, event, arg):  # type: ignore[no-untyped-def]
        nonlocal count
        if frame.f_code.co_filename not in files:
            return None
        if event == "line":
            count += 1
        return tracer

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        run()
    finally:
        sys.settrace(previous)
    return count
