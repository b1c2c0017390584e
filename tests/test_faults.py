"""Faults: transient failures retried with identical output, a build killed half-way.

What each runner does with a failing transform, measured here:
- BundleBasedDirectRunner retries a failed bundle (up to 4 attempts): the real build, with a flaky
  stage and a shard writer that fails half-way through a file, gives the uninterrupted build's bytes;
- the default DirectRunner (the portable FnApiRunner, in-process or multi_processing) does not
  retry: the build fails, writes no manifest, and a rerun gives the same bytes (the kill test);
- DaskRunner (pipelines/dask_runner.py) reruns a failed task up to `--dask_retries` times.
The writers make retries safe: every file is written under a temporary name and renamed when
complete, and its name and bytes depend only on its contents, so a rerun writes the same file.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import apache_beam as beam
import pytest
import xxhash
from apache_beam.options.pipeline_options import PipelineOptions

import lemur_corpus.pipelines.build
import lemur_corpus.pipelines.shard
from lemur_corpus.document import Document
from lemur_corpus.io import atomic_writer, write_atomic
from lemur_corpus.normalize import normalize_document
from lemur_corpus.pipelines.build import resolve_beam_args, run_build
from lemur_corpus.shards import write_shard
from tests.buildutil import output_digest, slice_config

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def fault_config():  # type: ignore[no-untyped-def]
    """A small real build in many shards (so a kill lands between the first shard and the manifest)."""
    return slice_config(code_rows=100, web_rows=40, shards={"target_tokens": 15_000})


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The uninterrupted build's bytes (in-process DirectRunner)."""
    out = tmp_path_factory.mktemp("reference")
    run_build(fault_config(), str(out))
    return output_digest(out)


class Flaky:
    """Fails the first attempt on a few documents and on the first writes of two shards, each once
    (at most 3 + 2 failures: a retried bundle must be able to succeed within its 4 attempts)."""

    budget = 3
    failed_docs: set[str] = set()
    failed_shards: set[str] = set()

    @classmethod
    def reset(cls) -> None:
        cls.budget, cls.failed_docs, cls.failed_shards = 3, set(), set()


def flaky_normalize(doc: Document):  # type: ignore[no-untyped-def]
    if xxhash.xxh64_intdigest(doc.id.encode()) % 10 == 0 and doc.id not in Flaky.failed_docs and Flaky.budget > 0:
        Flaky.failed_docs.add(doc.id)
        Flaky.budget -= 1
        raise ConnectionError(f"transient failure normalizing {doc.id}")
    return normalize_document(doc)


def flaky_write_shard(prefix: str, name: str, docs, dtype):  # type: ignore[no-untyped-def]
    """The first write of shards 0 and 1 dies half-way through the .bin file."""
    if name.endswith(("-00000", "-00001")) and name not in Flaky.failed_shards:
        Flaky.failed_shards.add(name)
        with atomic_writer(prefix + ".bin") as handle:
            handle.write(b"\x00" * 1000)
            raise OSError(f"disk hiccup writing {name}")
    return write_shard(prefix, name, docs, dtype)


def test_bundle_retries_give_the_uninterrupted_bytes(reference: dict[str, str], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    Flaky.reset()
    monkeypatch.setattr(lemur_corpus.pipelines.build, "normalize_document", flaky_normalize)
    monkeypatch.setattr(lemur_corpus.pipelines.shard, "write_shard", flaky_write_shard)
    manifest = run_build(fault_config(), str(tmp_path), ["--runner=BundleBasedDirectRunner"])
    assert len(Flaky.failed_docs) == 3 and len(Flaky.failed_shards) == 2  # the faults did happen
    assert manifest["accounting"]["balanced"]  # a retried bundle's first outputs were not kept
    assert output_digest(tmp_path) == reference
    assert not list(tmp_path.rglob("*.tmp-*"))


def test_default_direct_runner_does_not_retry_and_writes_no_manifest(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    Flaky.reset()
    monkeypatch.setattr(lemur_corpus.pipelines.build, "normalize_document", flaky_normalize)
    with pytest.raises(Exception, match="transient failure normalizing"):
        run_build(fault_config(), str(tmp_path))
    assert not (tmp_path / "manifest.json").exists()


class FlakyWriteFn(beam.DoFn):
    """Writes one file per number; the first attempt on every tenth number dies half-way through
    its file. Markers on disk remember the attempts, across worker processes."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def process(self, n: int):  # type: ignore[no-untyped-def]
        data = f"{n}\n".encode() * (n + 1)
        path = os.path.join(self.folder, "out", f"{n:03d}.txt")
        marker = os.path.join(self.folder, "attempts", f"{n:03d}")
        if n % 10 == 0 and not os.path.exists(marker):
            open(marker, "x").close()
            with atomic_writer(path) as handle:
                handle.write(data[: len(data) // 2])
                raise ConnectionError(f"transient failure writing {n}")
        write_atomic(path, data)
        yield len(data)


def _flaky_pipeline(folder: Path, args: list[str]) -> None:
    for sub in ("out", "attempts"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    with beam.Pipeline(options=PipelineOptions(resolve_beam_args(args))) as p:
        (
            p
            | beam.Create(range(40))
            | beam.ParDo(FlakyWriteFn(str(folder)))
            | beam.CombineGlobally(sum)
            | beam.Map(lambda total: write_atomic(str(folder / "total.json"), json.dumps(total).encode()))
        )


def test_dask_reruns_failed_tasks_with_identical_output(dask_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    address = f"--dask_client_address={dask_cluster.scheduler_address}"
    _flaky_pipeline(tmp_path / "retried", ["--runner=DaskRunner", address])
    # the reference: no marker-triggered failure left to happen (every marker exists already)
    (tmp_path / "clean" / "attempts").mkdir(parents=True)
    for n in range(0, 40, 10):
        (tmp_path / "clean" / "attempts" / f"{n:03d}").touch()
    _flaky_pipeline(tmp_path / "clean", [])
    assert sorted(os.listdir(tmp_path / "retried" / "attempts")) == [f"{n:03d}" for n in range(0, 40, 10)]
    for name in ("out", "total.json"):
        retried, clean = tmp_path / "retried" / name, tmp_path / "clean" / name
        if retried.is_dir():
            assert ({p.name: p.read_bytes() for p in retried.iterdir()}
                    == {p.name: p.read_bytes() for p in clean.iterdir()})
        else:
            assert retried.read_bytes() == clean.read_bytes()
    with pytest.raises(Exception, match="transient failure writing"):
        _flaky_pipeline(tmp_path / "no_retries", ["--runner=DaskRunner", address, "--dask_retries=0"])


def _ops():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("lemur_corpus_ops_faults", REPO / "dags" / "lemur_corpus_ops.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]  # its dataclasses look their module up
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_killed_build_leaves_no_manifest_and_a_rerun_gives_the_same_bytes(reference: dict[str, str],
                                                                         tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(fault_config().resolved()))
    out = tmp_path / "out"
    build = subprocess.Popen(
        [sys.executable, "-m", "lemur_corpus.cli", "build", "--config", str(config), "--out", str(out)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while build.poll() is None and time.monotonic() < deadline:
        if (out / "shards").is_dir() and any((out / "shards").iterdir()):  # half-way: tokens spilled, or shards written
            build.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    build.wait()
    stderr = build.stderr.read().decode()  # type: ignore[union-attr]
    assert build.returncode == -signal.SIGKILL, (
        f"the build was not killed mid-run (exit {build.returncode}): {stderr[-2000:]}")
    assert list((out / "shards").iterdir())  # it had begun writing shards...
    assert not (out / "manifest.json").exists()  # ...but nothing says the folder is a finished build
    audit = subprocess.run([sys.executable, "-m", "lemur_corpus.cli", "audit", str(out)], cwd=REPO, capture_output=True,
                           text=True)
    assert audit.returncode != 0 and "manifest.json" in audit.stderr
    ops = _ops()
    with pytest.raises(ops.PublishError, match="not a finished build"):
        ops.publish(str(tmp_path), str(out), expected_manifest_sha256="0" * 64, record={})
    assert not (tmp_path / "latest.json").exists() and not (tmp_path / "latest").exists()
    run_build(fault_config(), str(out))  # no --overwrite needed: the folder holds no finished build
    assert output_digest(out) == reference
