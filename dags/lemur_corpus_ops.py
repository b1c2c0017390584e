"""What the lemur-corpus DAGs do, as plain functions: paths, command lines, running the CLI, publishing.

This module imports only the standard library, so the scheduler parses the DAG files in milliseconds and
the functions are unit-tested without Airflow. The pipeline itself never runs here: every step is the
`corpus` command line of the pipeline's own virtualenv, started as a child process (Airflow and Beam pin
conflicting versions, so they never share an interpreter).

Layout of an output root (one per deployment):

    <root>/builds/<YYYY-MM-DD>/   one build per logical date: manifest.json (the commit marker), shards/, drops/
    <root>/manifests/             `corpus manifests regenerate`: each audited build's manifest + index.json
    <root>/latest.json            the publish record: which build, its manifest's sha256, its audit
    <root>/latest -> builds/...   a symlink to the same build, for readers that want a path

A build folder is rewritten in place when its date is run again (`corpus build --overwrite` clears the
previous attempt's manifest, shards and drop logs first), so a retry never mixes two attempts. Only a
build that passed `corpus audit` is ever published, and both pointers are replaced atomically
(`os.replace`): a reader sees the previous build or the new one, never a half-written pointer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DAG_SETTINGS: dict[str, Any] = {
    "start_date": dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc),
    "catchup": False,  # a new deployment builds the coming week, not every week since start_date
    "max_active_runs": 1,  # two runs of one DAG never write the same output root at once
    "tags": ["lemur-corpus"],
}
"""What both DAGs share."""
BUILDS_DIR = "builds"
MANIFESTS_DIR = "manifests"
POINTER_NAME = "latest.json"
LINK_NAME = "latest"
MANIFEST_NAME = "manifest.json"
POINTER_VERSION = 1
USER_ERROR_EXIT = 2
"""`corpus` exits 2 for mistakes a retry cannot fix (config, arguments, input files, nothing to audit)."""
STOP_GRACE_SECONDS = 30
"""How long a pipeline child gets to exit after SIGTERM when its task is killed, before SIGKILL."""

REPO = Path(__file__).resolve().parents[1]
CLI_VARIABLE = "lemur_corpus_cli"
"""The Airflow Variable naming the `corpus` executable (read at run time; AIRFLOW_VAR_LEMUR_CORPUS_CLI works)."""
DEFAULT_CLI = str(REPO / ".venv" / "bin" / "corpus")
"""The `corpus` entry point of the pipeline's virtualenv in this checkout (`make install` creates it)."""
DEFAULT_OUTPUT_ROOT = os.environ.get("LEMUR_CORPUS_OUTPUT_ROOT", str(REPO / "build" / "airflow"))


class CliFailed(Exception):
    """A `corpus` command exited non-zero; the message is its own error text, not a traceback."""

    def __init__(self, argv: Sequence[str], returncode: int, message: str, stdout: str = "") -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.retryable = returncode != USER_ERROR_EXIT
        super().__init__(message)


def command_name(argv: Sequence[str]) -> str:
    """`corpus validate`, `corpus manifests regenerate`: the program and its words before any option."""
    words = [os.path.basename(argv[0])]
    for arg in argv[1:]:
        if arg.startswith("-"):
            break
        words.append(arg)
    return " ".join(words)


class PublishError(Exception):
    """The build to publish, or the published build, is not what the pointer and the audit say."""


# ---------------------------------------------------------------------------------------------
# Paths and parameters


def date_key(logical_date: dt.datetime | None, run_after: dt.datetime) -> str:
    """The folder name of a run's build: its logical date (a manual run without one: the day it ran)."""
    when = logical_date or run_after
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%d")


def build_dir(output_root: str, key: str) -> str:
    return os.path.join(output_root, BUILDS_DIR, key)


def manifests_dir(output_root: str) -> str:
    return os.path.join(output_root, MANIFESTS_DIR)


def from_checkout(path: str) -> str:
    """A relative path param, taken from the checkout holding dags/: a worker's own cwd is arbitrary."""
    return os.path.normpath(os.path.join(REPO, os.path.expanduser(path)))


def check_output_root(output_root: str) -> str:
    """The absolute output root. Publishing renames files, so it must be a filesystem folder."""
    if not output_root or not output_root.strip():
        raise ValueError("output_root is empty: name the folder builds are written to")
    if "://" in output_root:
        raise ValueError(
            f"output_root {output_root!r} is a URL; the DAG publishes with an atomic rename, so it needs a "
            "local or shared-filesystem folder (README: Scheduled builds with Airflow, Dataflow)"
        )
    return from_checkout(output_root)


def beam_args(runner: str, options: Sequence[str]) -> list[str]:
    """The Beam options after `--`: the runner first, then the rest as given (the runner only once)."""
    options = [str(o) for o in options]
    clash = [o for o in options if o == "--runner" or o.startswith("--runner=")]
    if clash:
        raise ValueError(f"beam_options sets the runner ({clash[0]}); use the 'runner' param instead")
    return [f"--runner={runner}", *options]


# ---------------------------------------------------------------------------------------------
# Command lines (argv lists: no shell, so params with spaces or quotes are passed as they are)


def _config_args(config: str | None) -> list[str]:
    return ["--config", config] if config else []


def validate_argv(cli: str, config: str | None, out: str, beam: Sequence[str]) -> list[str]:
    return [cli, "validate", *_config_args(config), "--out", out, "--json", "--", *beam]


def build_argv(cli: str, config: str | None, out: str, beam: Sequence[str],
               dedup_against: Sequence[str] = ()) -> list[str]:
    """`--overwrite`: a rerun of the same date replaces that date's build instead of refusing;
    `dedup_against`: earlier builds or merged dedup indexes the build dedups against; the build's id
    in its dedup index (what later removals name) is its folder's name, the run's date."""
    against = ["--dedup-against", *dedup_against] if dedup_against else []
    build_id = os.path.basename(os.path.normpath(out))
    return [cli, "build", *_config_args(config), "--out", out, "--overwrite", "--build-id", build_id, *against,
            "--json", "--", *beam]


def dedup_against(output_root: str, build: str, incremental: bool, explicit: Sequence[str]) -> list[str]:
    """What a run dedups against: nothing for a full rebuild (`incremental` off); else the given
    builds or merged indexes, or by default the last published build. A rerun of the published
    date's own folder dedups against nothing: it replaces that build, it does not extend it."""
    if not incremental:
        return []
    if explicit:
        return [os.path.abspath(p) for p in explicit]
    published = published_build(output_root)
    if published is None or os.path.normpath(published) == os.path.normpath(build):
        return []
    return [published]


def audit_argv(cli: str, build: str) -> list[str]:
    return [cli, "audit", build, "--json"]


def regenerate_argv(cli: str, index_root: str, builds: Sequence[str]) -> list[str]:
    return [cli, "manifests", "regenerate", "--root", index_root, "--json", *builds]


# ---------------------------------------------------------------------------------------------
# Running the CLI


@dataclass(frozen=True)
class CliResult:
    argv: list[str]
    stdout: str

    def json(self) -> Any:
        """The command's `--json` output (its stdout), parsed."""
        return json.loads(self.stdout)


def error_text(stderr_lines: Sequence[str], returncode: int) -> str:
    """The CLI's own message: from its first `error:` line to the end (config errors span lines).

    Without one (a crash, a kill), the last lines of its output, which hold the traceback's last frame.
    """
    for i, line in enumerate(stderr_lines):
        if line.startswith("error:"):
            return "\n".join(stderr_lines[i:]).removeprefix("error:").strip()
    tail = "\n".join(stderr_lines[-10:]).strip()
    return f"exited with status {returncode}" + (f":\n{tail}" if tail else " and printed nothing")


def run_cli(argv: Sequence[str], log: logging.Logger | logging.LoggerAdapter, *,
            env: dict[str, str] | None = None,
            popen: Callable[..., subprocess.Popen] = subprocess.Popen) -> CliResult:
    """Run one `corpus` command; stream its progress to the task log; return its stdout.

    stdout (the `--json` result) goes to a temporary file so a large report cannot block the pipe while
    stderr (progress and errors) is read line by line. If the task is killed (timeout, SIGTERM), the
    child is terminated too instead of being left running without its task.
    """
    argv = [str(a) for a in argv]
    if not os.path.isfile(argv[0]) or not os.access(argv[0], os.X_OK):
        raise CliFailed(argv, USER_ERROR_EXIT,
                        f"the corpus command line {argv[0]} does not exist or is not executable: run `make install` "
                        "in the lemur-corpus checkout, or set the Airflow Variable lemur_corpus_cli to its path")
    log.info("$ %s", " ".join(argv))
    stderr_lines: list[str] = []
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as out:
        proc = popen(argv, stdout=out, stderr=subprocess.PIPE, text=True, encoding="utf-8",
                     errors="replace", env=env, bufsize=1)
        try:
            assert proc.stderr is not None
            for line in proc.stderr:
                line = line.rstrip("\n")
                stderr_lines.append(line)
                log.info("%s", line)
            returncode = proc.wait()
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(STOP_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        out.seek(0)
        stdout = out.read()
    if stdout.strip():
        log.info("%s output:\n%s", command_name(argv), stdout.rstrip())
    if returncode != 0:
        raise CliFailed(argv, returncode, error_text(stderr_lines, returncode), stdout)
    return CliResult(argv, stdout)


MISMATCHES_SHOWN = 20
"""Mismatches quoted in a failed audit's message (all of them are in the task log)."""


def audit_failure(exc: CliFailed) -> str:
    """Why `corpus audit --json` failed: its mismatches (exit 1), else its error message (exit 2, crash)."""
    try:
        mismatches = json.loads(exc.stdout).get("mismatches") or []
    except (ValueError, AttributeError):
        mismatches = []
    if not mismatches:
        return str(exc)
    shown = "\n  ".join(str(m) for m in mismatches[:MISMATCHES_SHOWN])
    more = len(mismatches) - MISMATCHES_SHOWN
    return f"{len(mismatches)} mismatch(es):\n  {shown}" + (f"\n  ... and {more} more" if more > 0 else "")


# ---------------------------------------------------------------------------------------------
# Publishing


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def manifest_sha256(build: str) -> str:
    path = os.path.join(build, MANIFEST_NAME)
    if not os.path.isfile(path):
        raise PublishError(f"{build} holds no {MANIFEST_NAME}: it is not a finished build")
    return file_sha256(path)


def variant_dirs(build: str) -> list[str]:
    """The variant folders of a build with variants (its manifest's `variants`), each a complete build
    that is audited, and published, with it (`<output_root>/latest/variants/<name>`)."""
    with open(os.path.join(build, MANIFEST_NAME), encoding="utf-8") as handle:
        entries = json.load(handle).get("variants") or []
    return [os.path.join(build, str(entry["path"])) for entry in entries]


def _write_json_atomic(path: str, data: Any) -> None:
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:12]}"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _link_atomic(link: str, target: str) -> None:
    tmp = f"{link}.tmp-{uuid.uuid4().hex[:12]}"
    os.symlink(target, tmp)
    os.replace(tmp, link)


def publish(output_root: str, build: str, *, expected_manifest_sha256: str, record: dict[str, Any]) -> dict[str, Any]:
    """Point `latest.json` and `latest` at `build`, which passed its audit with that manifest.

    The manifest is hashed again first: if the folder was rewritten between the audit and now (another run
    of the same date), nothing is published. The record is written before the link, so a crash between
    the two leaves a link to the previous build and a record that `check_published` reports as drift.
    """
    actual = manifest_sha256(build)
    if actual != expected_manifest_sha256:
        raise PublishError(
            f"{build}/{MANIFEST_NAME} changed since it was audited (sha256 {actual[:12]}, audited "
            f"{expected_manifest_sha256[:12]}); not publishing"
        )
    relative = os.path.relpath(build, output_root)
    pointer = {
        "pointer_version": POINTER_VERSION,
        "build": relative,
        "manifest_sha256": actual,
        "published_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **record,
    }
    _write_json_atomic(os.path.join(output_root, POINTER_NAME), pointer)
    _link_atomic(os.path.join(output_root, LINK_NAME), relative)
    return pointer


def read_published(output_root: str) -> dict[str, Any] | None:
    """The publish record, or None when nothing was ever published (or it was withdrawn)."""
    path = os.path.join(output_root, POINTER_NAME)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError) as exc:
        raise PublishError(f"{path} is unreadable: {exc}") from None
    if not isinstance(record, dict) or "build" not in record or "manifest_sha256" not in record:
        raise PublishError(f"{path} is not a publish record (no 'build' / 'manifest_sha256')")
    return record


def published_build(output_root: str) -> str | None:
    record = read_published(output_root)
    return None if record is None else os.path.normpath(os.path.join(output_root, record["build"]))


def withdraw_if_published(output_root: str, build: str) -> bool:
    """Take `latest` down when `build` is what it names, before that folder is rebuilt in place.

    Readers then find no published build rather than one whose shards are being rewritten; the run
    publishes again once the new build passes its audit. The record goes first, then the link.
    """
    current = published_build(output_root)
    if current is None or os.path.normpath(current) != os.path.normpath(build):
        return False
    os.unlink(os.path.join(output_root, POINTER_NAME))
    link = os.path.join(output_root, LINK_NAME)
    if os.path.islink(link):
        os.unlink(link)
    return True


def check_published(output_root: str, record: dict[str, Any]) -> list[str]:
    """Drift between the publish record and the disk (empty when they agree); `corpus audit` does the shards."""
    build = os.path.normpath(os.path.join(output_root, record["build"]))
    problems = []
    link = os.path.join(output_root, LINK_NAME)
    if not os.path.islink(link):
        problems.append(f"{link} is missing or is not a symlink")
    elif os.path.normpath(os.path.join(output_root, os.readlink(link))) != build:
        problems.append(f"{link} points to {os.readlink(link)}, but {POINTER_NAME} names {record['build']}")
    manifest = os.path.join(build, MANIFEST_NAME)
    if not os.path.isfile(manifest):
        problems.append(f"the published build {build} has no {MANIFEST_NAME} (deleted, or being rebuilt)")
    else:
        actual = file_sha256(manifest)
        if actual != record["manifest_sha256"]:
            problems.append(
                f"{manifest} changed since it was published (sha256 {actual[:12]}, published "
                f"{record['manifest_sha256'][:12]})"
            )
    return problems
