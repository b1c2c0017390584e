"""The Airflow DAGs (dags/), run for real and offline.

Two layers:
- `lemur_corpus_ops` (paths, command lines, running the CLI, publishing) is plain stdlib Python: tested
  here directly, in milliseconds, without Airflow.
- The DAGs themselves need Airflow 3, which lives in its own virtualenv (`.venv-airflow`, `make airflow`)
  because its pins conflict with the pipeline's. `tests/airflow_harness.py` runs there, in a temporary
  AIRFLOW_HOME with a fresh sqlite metadata DB, no scheduler and no network: it loads dags/ with a
  DagBag, then runs real DAG runs with `dag.test()`, whose tasks call the real `corpus` CLI of .venv.
  All runs happen in ONE harness process (a module fixture) because Airflow's first task in a process
  builds its in-process execution API; the tests below each check one part of the recorded results.

Without `.venv-airflow` the Airflow tests skip with the command that creates it; under CI they fail.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import shared_path

REPO = Path(__file__).resolve().parents[1]
DAGS = REPO / "dags"
HARNESS = REPO / "tests" / "airflow_harness.py"
AIRFLOW_PYTHON = Path(os.environ.get("LEMUR_AIRFLOW_PYTHON", REPO / ".venv-airflow" / "bin" / "python"))
CORPUS = Path(sys.executable).with_name("corpus")
HARNESS_TIMEOUT_S = 1500

GOOD_DATE, BAD_AUDIT_DATE = "2025-01-06", "2025-01-13"
INCREMENTAL_DATE = "2025-02-10"
BAD_INPUT_DATES = {"missing_config": "2025-01-20", "unknown_runner": "2025-01-27", "unwritable_root": "2025-02-03"}

spec = importlib.util.spec_from_file_location("lemur_corpus_ops", DAGS / "lemur_corpus_ops.py")
assert spec and spec.loader
ops = importlib.util.module_from_spec(spec)
sys.modules["lemur_corpus_ops"] = ops
spec.loader.exec_module(ops)

SMOKE_CONFIG = textwrap.dedent("""\
    # The build the DAG tests run: a slice of the real sample data (The Stack-layout code, extracted web
    # pages), Python code only, mixed code:text as Lemur does (Table 8: 90.9% code, 9.1% text).
    name: airflow-smoke
    inputs:
      - name: stack
        format: stack
        kind: code
        paths: [{code}]
        limit_per_file: 300
      - name: web
        format: jsonl
        kind: text
        source: refinedweb
        paths: [{web}]
        limit_per_file: 200
    code_buckets:
      bucket_by_language: {{Python: python}}
    mixture:
      sources:
        python: {{kind: code, weight: 90.9}}
        refinedweb: {{kind: text, weight: 9.1}}
    shards:
      target_tokens: 400000
    """)

# A stand-in for `corpus` that runs the real command line, then flips one byte of a shard after a
# successful build: the audit that follows then really fails, on a real build.
CORRUPTING_CLI = textwrap.dedent("""\
    #!{python}
    import glob, os, subprocess, sys
    status = subprocess.call([{corpus!r}, *sys.argv[1:]])
    if status == 0 and sys.argv[1] == "build":
        out = sys.argv[sys.argv.index("--out") + 1]
        shard = sorted(glob.glob(os.path.join(out, "shards", "*.bin")))[0]
        with open(shard, "r+b") as handle:
            handle.seek(8)
            byte = handle.read(1)
            handle.seek(8)
            handle.write(bytes([byte[0] ^ 0xFF]))
    sys.exit(status)
    """)


# ---------------------------------------------------------------------------------------------
# lemur_corpus_ops: no Airflow needed


def test_ops_imports_only_the_standard_library() -> None:
    """The DAG files' only import besides Airflow: anything heavier would slow every scheduler parse."""
    code = ("import sys; before = set(sys.modules); sys.path.insert(0, sys.argv[1]); import lemur_corpus_ops; "
            "print('\\n'.join(sorted({m.split('.')[0] for m in set(sys.modules) - before})))")
    loaded = subprocess.run([sys.executable, "-c", code, str(DAGS)], capture_output=True, text=True,
                            check=True).stdout.split()
    assert set(loaded) - set(sys.stdlib_module_names) == {"lemur_corpus_ops"}


def test_build_dir_is_one_folder_per_logical_date() -> None:
    import datetime as dt

    monday = dt.datetime(2025, 1, 6, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    assert ops.date_key(monday, dt.datetime(2030, 1, 1, tzinfo=dt.UTC)) == "2025-01-07"
    assert ops.date_key(None, dt.datetime(2025, 3, 2, 8, tzinfo=dt.UTC)) == "2025-03-02"
    assert ops.build_dir("/data/lemur", "2025-01-07") == "/data/lemur/builds/2025-01-07"


def test_build_command_overwrites_the_dates_folder_and_passes_beam_options_through() -> None:
    beam = ops.beam_args("DirectRunner", ["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    argv = ops.build_argv("/venv/bin/corpus", "/etc/lemur it's.yaml", "/out/builds/2025-01-06", beam)
    assert argv == ["/venv/bin/corpus", "build", "--config", "/etc/lemur it's.yaml", "--out",
                    "/out/builds/2025-01-06", "--overwrite", "--build-id", "2025-01-06", "--json", "--",
                    "--runner=DirectRunner",
                    "--direct_num_workers=2", "--direct_running_mode=multi_processing"]
    assert ops.validate_argv("corpus", None, "/o", ["--runner=X"]) == [
        "corpus", "validate", "--out", "/o", "--json", "--", "--runner=X"]


def test_the_runner_is_set_by_its_param_only() -> None:
    with pytest.raises(ValueError, match="use the 'runner' param"):
        ops.beam_args("DirectRunner", ["--runner=DataflowRunner"])


def test_output_root_must_be_a_local_folder() -> None:
    with pytest.raises(ValueError, match="is a URL"):
        ops.check_output_root("gs://bucket/lemur")
    with pytest.raises(ValueError, match="empty"):
        ops.check_output_root("  ")
    assert ops.check_output_root("build/airflow") == str(REPO / "build" / "airflow")  # from the checkout
    assert ops.check_output_root("/abs/root/") == "/abs/root"


def _fake_build(root: Path, key: str, content: bytes = b'{"build": 1}') -> str:
    build = root / "builds" / key
    build.mkdir(parents=True)
    (build / "manifest.json").write_bytes(content)
    return str(build)


def test_publish_replaces_both_pointers_atomically(tmp_path: Path) -> None:
    first = _fake_build(tmp_path, "2025-01-06", b"first")
    second = _fake_build(tmp_path, "2025-01-13", b"second")
    ops.publish(str(tmp_path), first, expected_manifest_sha256=ops.manifest_sha256(first), record={"run_id": "a"})
    record = ops.publish(str(tmp_path), second, expected_manifest_sha256=ops.manifest_sha256(second),
                         record={"run_id": "b"})
    assert record["build"] == "builds/2025-01-13" and record["run_id"] == "b"
    assert os.readlink(tmp_path / "latest") == "builds/2025-01-13"
    assert ops.read_published(str(tmp_path)) == record
    assert ops.check_published(str(tmp_path), record) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["builds", "latest", "latest.json"]  # no temp files


def test_publish_refuses_a_build_rewritten_since_its_audit(tmp_path: Path) -> None:
    build = _fake_build(tmp_path, "2025-01-06", b"audited")
    audited = ops.manifest_sha256(build)
    (Path(build) / "manifest.json").write_bytes(b"rewritten by another run")
    with pytest.raises(ops.PublishError, match="changed since it was audited"):
        ops.publish(str(tmp_path), build, expected_manifest_sha256=audited, record={})
    assert ops.read_published(str(tmp_path)) is None and not (tmp_path / "latest").exists()


def test_rebuilding_the_published_date_withdraws_latest_first(tmp_path: Path) -> None:
    published = _fake_build(tmp_path, "2025-01-06")
    other = _fake_build(tmp_path, "2025-01-13")
    ops.publish(str(tmp_path), published, expected_manifest_sha256=ops.manifest_sha256(published), record={})
    assert not ops.withdraw_if_published(str(tmp_path), other)
    assert ops.published_build(str(tmp_path)) == published
    assert ops.withdraw_if_published(str(tmp_path), published)
    assert ops.read_published(str(tmp_path)) is None and not os.path.lexists(tmp_path / "latest")


def test_check_published_reports_every_drift(tmp_path: Path) -> None:
    build = _fake_build(tmp_path, "2025-01-06")
    other = _fake_build(tmp_path, "2025-01-13")
    record = ops.publish(str(tmp_path), build, expected_manifest_sha256=ops.manifest_sha256(build), record={})
    os.unlink(tmp_path / "latest")
    os.symlink(os.path.relpath(other, tmp_path), tmp_path / "latest")
    (Path(build) / "manifest.json").write_bytes(b"edited in place")
    problems = ops.check_published(str(tmp_path), record)
    assert len(problems) == 2
    assert "points to builds/2025-01-13, but latest.json names builds/2025-01-06" in problems[0]
    assert "changed since it was published" in problems[1]
    os.unlink(Path(build) / "manifest.json")
    assert "has no manifest.json" in ops.check_published(str(tmp_path), record)[1]


def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "fake-corpus"
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)
    return str(path)


class _Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, fmt: str, *args: Any) -> None:
        self.lines.append(fmt % args)


def test_run_cli_streams_progress_and_returns_the_json(tmp_path: Path) -> None:
    cli = _script(tmp_path, "import sys, json\nprint('04:00:00 I reading', file=sys.stderr)\n"
                  "json.dump({'ok': True, 'argv': sys.argv[1:]}, sys.stdout)\n")
    log = _Log()
    result = ops.run_cli([cli, "audit", "some build", "--json"], log)
    assert result.json() == {"ok": True, "argv": ["audit", "some build", "--json"]}
    assert "04:00:00 I reading" in log.lines


def test_run_cli_failure_carries_the_clis_message_and_whether_to_retry(tmp_path: Path) -> None:
    cli = _script(tmp_path, "import sys\nprint('05:00 I start', file=sys.stderr)\n"
                  "print('error: cfg.yaml: invalid configuration (1 problem(s))', file=sys.stderr)\n"
                  "print('  mixture.sources: required key is missing', file=sys.stderr)\nsys.exit(2)\n")
    with pytest.raises(ops.CliFailed) as caught:
        ops.run_cli([cli, "validate"], _Log())
    assert str(caught.value) == ("cfg.yaml: invalid configuration (1 problem(s))\n"
                                 "  mixture.sources: required key is missing")
    assert not caught.value.retryable
    crash = _script(tmp_path, "import os\nos.kill(os.getpid(), 9)\n")
    with pytest.raises(ops.CliFailed) as killed:
        ops.run_cli([crash, "build"], _Log())
    assert killed.value.retryable and killed.value.returncode == -9


def test_run_cli_names_a_missing_pipeline_environment(tmp_path: Path) -> None:
    with pytest.raises(ops.CliFailed, match="make install"):
        ops.run_cli([str(tmp_path / "no-venv" / "bin" / "corpus"), "build"], _Log())


def test_audit_failure_quotes_the_mismatches() -> None:
    exc = ops.CliFailed(["corpus", "audit"], 1, "exited with status 1 and printed nothing",
                        json.dumps({"ok": False, "mismatches": ["shard-00000.bin: sha256 differs"]}))
    assert ops.audit_failure(exc) == "1 mismatch(es):\n  shard-00000.bin: sha256 differs"
    assert ops.audit_failure(ops.CliFailed(["corpus", "audit"], 2, "no manifest.json", "")) == "no manifest.json"


# ---------------------------------------------------------------------------------------------
# `corpus validate`: the build DAG's first task


@pytest.fixture(scope="module")
def smoke_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "smoke.yaml"
    path.write_text(_smoke_config_text())
    return path


def test_validate_reports_what_the_build_would_use_and_leaves_no_probe(smoke_config: Path, tmp_path: Path) -> None:
    from lemur_corpus.commands.validate import validate
    from lemur_corpus.config import load_config

    out = tmp_path / "builds" / "2025-01-06"
    report = validate(str(smoke_config), str(out), ["--runner=DirectRunner", "--direct_num_workers=2"])
    assert report["name"] == "airflow-smoke"
    assert report["config_hash"] == load_config(smoke_config).config_hash()
    assert report["runner"] == "DirectRunner" and report["beam_args"][-1] == "--direct_num_workers=2"
    assert [(i["name"], i["files"]) for i in report["inputs"]] == [("stack", 1), ("web", 1)]
    assert out.is_dir() and list(out.iterdir()) == []


def test_validate_never_touches_an_existing_build(smoke_config: Path, tmp_path: Path) -> None:
    from lemur_corpus.commands.validate import validate

    (tmp_path / "shards").mkdir()
    (tmp_path / "manifest.json").write_text("{}")
    (tmp_path / "shards" / "shard-00000.bin").write_bytes(b"\x01\x02")
    validate(str(smoke_config), str(tmp_path), [])
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "manifest.json", "shards", "shards/shard-00000.bin"]


@pytest.mark.parametrize("case, message", [
    ("missing_config", "no-such.yaml: config file not found"),
    ("unknown_runner", "unknown Beam runner 'NoSuchRunner'"),
    ("unwritable_root", "is not writable"),
])
def test_validate_stops_on_bad_input_with_one_message(smoke_config: Path, tmp_path: Path, case: str,
                                                      message: str) -> None:
    from lemur_corpus.commands.validate import validate
    from lemur_corpus.errors import ConfigError

    config, out, beam = str(smoke_config), str(tmp_path / "out"), ["--runner=DirectRunner"]
    if case == "missing_config":
        config = str(tmp_path / "no-such.yaml")
    elif case == "unknown_runner":
        beam = ["--runner=NoSuchRunner"]
    else:
        out = _unwritable_root(tmp_path)
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(config, out, beam)
    assert not (tmp_path / "out").exists()  # a config or runner mistake creates nothing


# ---------------------------------------------------------------------------------------------
# The DAGs, in the Airflow virtualenv


def _airflow_or_skip() -> None:
    if AIRFLOW_PYTHON.exists():
        return
    message = f"the Airflow virtualenv is missing ({AIRFLOW_PYTHON}); create it with `make airflow`"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _unwritable_root(tmp_path: Path) -> str:
    """A folder nobody can create anything in. Root ignores permission bits, so it gets /sys instead."""
    if os.geteuid() == 0:
        return "/sys/lemur-corpus-airflow-test"
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    return str(locked / "out")


def _smoke_config_text() -> str:
    return SMOKE_CONFIG.format(code=shared_path("code", "code_sample.jsonl.zst"),
                               web=shared_path("web", "trafilatura_pages.main.jsonl.zst"))


@pytest.fixture(scope="module")
def airflow_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every DAG run the tests below check, in one harness process (see the module docstring)."""
    _airflow_or_skip()
    work = tmp_path_factory.mktemp("airflow")
    home = work / "home"
    home.mkdir()
    config = work / "smoke.yaml"
    config.write_text(_smoke_config_text())
    more = work / "smoke-more.yaml"  # the same inputs, more of them: the next week's data (no new Python
    # file among them: its pool is empty once the published ones are removed, so it is not mixed)
    more.write_text(_smoke_config_text().replace("limit_per_file: 300", "limit_per_file: 500")
                    .replace("limit_per_file: 200", "limit_per_file: 400")
                    .replace("mixture:\n", "mixture:\n  enabled: false\n  on_empty_source: redistribute\n"))
    corrupting = work / "corrupting-corpus"
    corrupting.write_text(CORRUPTING_CLI.format(python=sys.executable, corpus=str(CORPUS)))
    corrupting.chmod(0o755)
    root = work / "out"

    def build(name: str, date: str, **conf: Any) -> dict[str, Any]:
        conf = {"config": str(config), "output_root": str(root), "runner": "DirectRunner", "beam_options": [],
                **conf}
        return {"kind": "run", "name": name, "dag_id": "lemur_corpus_build", "logical_date": f"{date}T00:00:00+00:00",
                "conf": conf}

    def audit(name: str, date: str, output_root: Path = root) -> dict[str, Any]:
        return {"kind": "run", "name": name, "dag_id": "lemur_corpus_audit", "logical_date": f"{date}T06:00:00+00:00",
                "conf": {"output_root": str(output_root)}}

    steps = [
        {"kind": "describe", "name": "describe"},
        audit("audit_nothing_published", "2025-01-05", output_root=root),
        build("good", GOOD_DATE),
        audit("audit_ok", "2025-01-07"),
        {**build("bad_audit", BAD_AUDIT_DATE, incremental=False),  # a full build: the same inputs again
         "env": {"AIRFLOW_VAR_LEMUR_CORPUS_CLI": str(corrupting)}},
        build("missing_config", BAD_INPUT_DATES["missing_config"], config=str(work / "no-such-config.yaml")),
        build("unknown_runner", BAD_INPUT_DATES["unknown_runner"], runner="NoSuchRunner"),
        build("unwritable_root", BAD_INPUT_DATES["unwritable_root"], output_root=_unwritable_root(work)),
        {"kind": "flip_byte", "name": "drift", "glob": str(root / "latest" / "shards" / "*.bin")},
        audit("audit_drift", "2025-01-08"),
        build("rerun", GOOD_DATE),
        build("incremental", INCREMENTAL_DATE, config=str(more), output_root=str(work / "out2"), incremental=True,
              dedup_against=[str(root / "builds" / GOOD_DATE)]),  # one harness process: say it, not inherit it
    ]
    (work / "steps.json").write_text(json.dumps(steps, indent=2))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW_VAR_LEMUR_CORPUS_CLI": str(CORPUS),
        "PYTHONPATH": "",
    }
    results_path = work / "results.json"
    proc = subprocess.run([str(AIRFLOW_PYTHON), str(HARNESS), "--dags", str(DAGS), "--steps",
                           str(work / "steps.json"), "--results", str(results_path)],
                          env=env, capture_output=True, text=True, timeout=HARNESS_TIMEOUT_S)
    assert proc.returncode == 0, f"the harness failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    results = json.loads(results_path.read_text())
    return {"steps": results["steps"], "root": root, "work": work}


def _log(run: dict[str, Any]) -> str:
    return Path(run["log"]).read_text(encoding="utf-8", errors="replace")


def _states(run: dict[str, Any]) -> dict[str, str]:
    return {task: info["state"] for task, info in run["tasks"].items()}


def _published(root: Path) -> dict[str, Any]:
    return json.loads((root / "latest.json").read_text())


@pytest.mark.slow
def test_dagbag_loads_both_dags_without_import_errors_or_heavy_imports(airflow_runs: dict[str, Any]) -> None:
    described = airflow_runs["steps"]["describe"]
    assert described["import_errors"] == {}
    assert described["dag_ids"] == ["lemur_corpus_audit", "lemur_corpus_build"]
    assert described["files"] == ["lemur_corpus_audit.py", "lemur_corpus_build.py"]  # .airflowignore: ops
    assert described["heavy_modules_loaded"] == []


@pytest.mark.slow
def test_build_dag_graph_schedule_and_params(airflow_runs: dict[str, Any]) -> None:
    dag = airflow_runs["steps"]["describe"]["dags"]["lemur_corpus_build"]
    assert (dag["schedule"], dag["catchup"], dag["max_active_runs"]) == ("@weekly", False, 1)
    chain = ["validate", "build", "audit", "regenerate_manifests", "publish"]
    assert sorted(dag["tasks"]) == sorted(chain)
    for before, after in zip(chain, chain[1:], strict=False):
        assert dag["tasks"][before]["downstream"] == [after]
        assert dag["tasks"][after]["upstream"] == [before]
    assert {t: v["trigger_rule"] for t, v in dag["tasks"].items()} == dict.fromkeys(chain, "all_success")
    params = dag["params"]
    assert sorted(params) == ["beam_options", "config", "dedup_against", "incremental", "output_root", "runner"]
    assert params["incremental"]["default"] is True and params["dedup_against"]["default"] == []
    assert params["config"] == {"default": None, "schema": {"type": ["null", "string"]},
                                "description": "Build config (YAML) path; null builds the embedded default"}
    assert all(p["description"] for p in params.values())
    assert params["runner"]["default"] == "DirectRunner" and params["runner"]["schema"]["type"] == "string"
    assert params["beam_options"]["default"] == []
    assert params["beam_options"]["schema"]["items"] == {"type": "string"}
    assert params["output_root"]["default"] == ops.DEFAULT_OUTPUT_ROOT


@pytest.mark.slow
def test_only_the_build_task_retries_with_exponential_backoff(airflow_runs: dict[str, Any]) -> None:
    tasks = airflow_runs["steps"]["describe"]["dags"]["lemur_corpus_build"]["tasks"]
    build = tasks["build"]
    assert (build["retries"], build["retry_delay_s"], build["retry_exponential_backoff"],
            build["max_retry_delay_s"], build["execution_timeout_s"]) == (2, 600.0, True, 7200.0, 48 * 3600.0)
    assert {t: v["retries"] for t, v in tasks.items() if t != "build"} == dict.fromkeys(
        ["validate", "audit", "regenerate_manifests", "publish"], 0)


@pytest.mark.slow
def test_audit_dag_graph_schedule_and_params(airflow_runs: dict[str, Any]) -> None:
    dag = airflow_runs["steps"]["describe"]["dags"]["lemur_corpus_audit"]
    assert (dag["schedule"], dag["catchup"], dag["max_active_runs"]) == ("@daily", False, 1)
    assert dag["tasks"]["locate_published"]["downstream"] == ["reaudit"]
    assert dag["tasks"]["reaudit"]["upstream"] == ["locate_published"]
    assert {t: v["retries"] for t, v in dag["tasks"].items()} == {"locate_published": 0, "reaudit": 0}
    assert list(dag["params"]) == ["output_root"]
    assert dag["params"]["output_root"]["default"] == ops.DEFAULT_OUTPUT_ROOT


@pytest.mark.slow
def test_a_scheduled_build_publishes_a_build_that_passes_corpus_audit(airflow_runs: dict[str, Any]) -> None:
    run, root = airflow_runs["steps"]["good"], airflow_runs["root"]
    assert run["state"] == "success", _log(run)[-3000:]
    assert set(_states(run).values()) == {"success"}
    # The rerun of this date (the last step) republished it; the pointer names this date's folder.
    record = _published(root)
    assert record["build"] == f"builds/{GOOD_DATE}" and record["logical_date"] == GOOD_DATE
    assert os.readlink(root / "latest") == f"builds/{GOOD_DATE}"
    assert record["audit"]["ok"] is True and record["totals"]["tokens"] > 0
    index = json.loads((root / "manifests" / "index.json").read_text())
    assert index["builds"] and {row["audit"] for row in index["builds"]} == {"passed"}  # only audited builds
    audit = subprocess.run([str(CORPUS), "audit", str(root / "latest"), "--json"], capture_output=True, text=True)
    assert audit.returncode == 0, audit.stdout[-3000:] + audit.stderr[-3000:]
    assert json.loads(audit.stdout)["ok"] is True


@pytest.mark.slow
def test_a_build_that_fails_its_audit_is_never_published(airflow_runs: dict[str, Any]) -> None:
    run = airflow_runs["steps"]["bad_audit"]
    assert run["state"] == "failed"
    assert _states(run) == {"validate": "success", "build": "success", "audit": "failed",
                            "regenerate_manifests": "upstream_failed", "publish": "upstream_failed"}
    log = _log(run)
    assert f"audit of {airflow_runs['root'] / 'builds' / BAD_AUDIT_DATE} failed, not publishing" in log
    assert "mismatch(es):" in log and "sha256" in log
    # The date's folder holds the failed build, but no pointer ever named it.
    assert (airflow_runs["root"] / "builds" / BAD_AUDIT_DATE / "manifest.json").exists()
    assert _published(airflow_runs["root"])["build"] == f"builds/{GOOD_DATE}"


@pytest.mark.slow
@pytest.mark.parametrize("case, message", [
    ("missing_config", "no-such-config.yaml: config file not found"),
    ("unknown_runner", "unknown Beam runner 'NoSuchRunner'"),
    ("unwritable_root", "is not writable"),
])
def test_bad_input_fails_the_first_task_and_nothing_after_it(airflow_runs: dict[str, Any], case: str,
                                                             message: str) -> None:
    run = airflow_runs["steps"][case]
    assert run["state"] == "failed"
    assert _states(run) == {"validate": "failed", "build": "upstream_failed", "audit": "upstream_failed",
                            "regenerate_manifests": "upstream_failed", "publish": "upstream_failed"}
    assert run["tasks"]["validate"]["try_number"] == 1
    log = _log(run)
    assert "AirflowFailException: corpus validate failed: " in log and message in log
    assert re.findall(r"\$ \S+ (\w+)", log) == ["validate"]  # the only command line the run started
    assert not (airflow_runs["root"] / "builds" / BAD_INPUT_DATES[case] / "manifest.json").exists()


@pytest.mark.slow
def test_audit_dag_passes_on_the_published_build_and_fails_loudly_on_drift(airflow_runs: dict[str, Any]) -> None:
    nothing = airflow_runs["steps"]["audit_nothing_published"]
    assert _states(nothing) == {"locate_published": "skipped", "reaudit": "skipped"}
    assert "nothing is published under" in _log(nothing)
    ok, drift = airflow_runs["steps"]["audit_ok"], airflow_runs["steps"]["audit_drift"]
    assert ok["state"] == "success" and set(_states(ok).values()) == {"success"}
    assert drift["state"] == "failed"
    assert _states(drift) == {"locate_published": "success", "reaudit": "failed"}
    log = _log(drift)
    assert f"DRIFT: the published build {airflow_runs['root'] / 'builds' / GOOD_DATE} no longer passes its audit" in log
    assert "sha256" in log


@pytest.mark.slow
def test_rerunning_a_date_replaces_its_build_in_place(airflow_runs: dict[str, Any]) -> None:
    """The rerun rewrote the drifted build: same shards byte for byte, nothing left of the earlier run."""
    run, root = airflow_runs["steps"]["rerun"], airflow_runs["root"]
    assert run["state"] == "success", _log(run)[-3000:]
    assert "was the published build: latest is withdrawn" in _log(run)
    build = root / "builds" / GOOD_DATE
    manifest = json.loads((build / "manifest.json").read_text())
    listed = {f["path"] for shard in manifest["shards"] for f in shard["files"].values()}
    listed |= {d["path"] for d in manifest.get("drop_logs", [])}
    for entry in manifest["dedup_index"]["written"].values():  # the index of what the build kept
        folder = entry["path"].rsplit("/", 1)[0]
        header = json.loads((build / entry["path"]).read_text())
        listed |= {entry["path"]} | {f"{folder}/{f['name']}" for f in header["files"]}
    on_disk = {str(p.relative_to(build)) for p in build.rglob("*") if p.is_file()} - {"manifest.json", ".lemur-corpus"}
    assert on_disk == listed
    assert _published(root)["manifest_sha256"] == ops.manifest_sha256(str(build))


@pytest.mark.slow
def test_an_incremental_run_dedups_against_the_given_build_and_records_it(airflow_runs: dict[str, Any]) -> None:
    run, root = airflow_runs["steps"]["incremental"], airflow_runs["root"]
    assert run["state"] == "success", _log(run)[-3000:]
    manifest = json.loads((airflow_runs["work"] / "out2" / "builds" / INCREMENTAL_DATE / "manifest.json").read_text())
    against = manifest["dedup_index"]["against"]
    assert {a["builds"][0] for a in against} == {GOOD_DATE} and {a["kind"] for a in against} == {"code", "text"}
    dropped = {reason for groups in manifest["accounting"]["stages"]["dedup"].values() for reason in groups["dropped"]}
    assert {"published_exact_duplicate"} <= dropped  # the earlier week's documents, read again
    assert manifest["dedup_index"]["build_id"] == INCREMENTAL_DATE
    bad = json.loads((root / "builds" / BAD_AUDIT_DATE / "manifest.json").read_text())
    assert bad["dedup_index"]["against"] == []  # incremental: false, a full build


def test_dedup_against_defaults_to_the_published_build_and_can_be_switched_off(tmp_path: Path) -> None:
    root = tmp_path / "out"
    first, second = root / "builds" / "2025-01-06", root / "builds" / "2025-01-13"
    for folder in (first, second):
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text("{}")
    assert ops.dedup_against(str(root), str(second), True, []) == []  # nothing published yet
    ops.publish(str(root), str(first), expected_manifest_sha256=ops.manifest_sha256(str(first)), record={})
    assert ops.dedup_against(str(root), str(second), True, []) == [str(first)]
    assert ops.dedup_against(str(root), str(first), True, []) == []  # a rerun of the published date
    assert ops.dedup_against(str(root), str(second), False, []) == []
    assert ops.dedup_against(str(root), str(second), True, ["/x/merged"]) == ["/x/merged"]
    argv = ops.build_argv("corpus", None, str(second), ["--runner=X"], [str(first)])
    assert argv == ["corpus", "build", "--out", str(second), "--overwrite", "--build-id", "2025-01-13",
                    "--dedup-against", str(first), "--json", "--", "--runner=X"]
