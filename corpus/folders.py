"""Output folders: the project replaces what it wrote there, and never touches anything else.

Every command that writes a folder (`corpus build`, `corpus dedup`, `corpus filter`) claims it
first. A claimed folder holds a marker, `.lemur-corpus` (which command wrote it), and files whose
names that command writes (`Owned`: exact names, and name patterns per subfolder). Claiming:

- a folder that does not exist is created and marked;
- a path that is a file, or a folder marked by another command, is refused;
- a folder holding anything the command does not write (a user's `notes.txt`, a `shards/mine.bin`)
  is refused with a message naming what is there; with `overwrite` the command goes ahead and
  replaces only its own files, leaving the others where they are;
- a finished output (its `finished` file is there) is refused without `overwrite`;
- an unfinished or failed one (no `finished` file) is cleared of the command's own files, so a rerun
  needs no `--overwrite`.

A folder written before markers existed is recognised when everything in it is the command's own.
Remote folders (`gs://`, `s3://`) hold no user files by convention and are cleared by name only.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil

from lemur_corpus.errors import ConfigError

MARKER_NAME = ".lemur-corpus"
TEMPORARY = re.compile(r".*\.tmp-[0-9a-f]{12}")
"""The temporary names of `io.write_atomic` and `io.atomic_writer`, left behind by a killed writer."""
MAX_NAMED = 5
PROBE_PREFIX = ".corpus-validate-probe-"
"""`corpus validate` proves a folder writable with a probe file of this prefix (removed again)."""


@dataclasses.dataclass(frozen=True)
class Owned:
    """What one command writes in its output folder."""

    command: str
    finished: str
    """The file whose presence marks a finished output (`manifest.json`, `summary.json`)."""
    names: frozenset[str]
    """Files written at the top of the folder."""
    patterns: tuple[tuple[str, re.Pattern[str]], ...] = ()
    """(subfolder, pattern of the file names written there; "" for the top of the folder)."""

    def owns(self, relative: str) -> bool:
        folder, _, name = relative.rpartition("/")
        if TEMPORARY.fullmatch(name):
            return True
        if not folder and (name in self.names or name == MARKER_NAME):
            return True
        return any(folder == where and pattern.fullmatch(name) for where, pattern in self.patterns)

    @property
    def subfolders(self) -> frozenset[str]:
        return frozenset(where for where, _ in self.patterns if where)


@dataclasses.dataclass(frozen=True)
class Survey:
    """What a folder holds, split by whether the command wrote it."""

    own: list[str]
    foreign: list[str]
    marker: str | None
    """The command named by the folder's marker; None when there is none."""


def survey(out_dir: str, owned: Owned) -> Survey:
    """The command's own and foreign entries of a local folder (subfolders the command writes are
    looked into; a foreign subfolder counts as one entry)."""
    own: list[str] = []
    foreign: list[str] = []
    for name in sorted(os.listdir(out_dir)):
        path = os.path.join(out_dir, name)
        if name in owned.subfolders and os.path.isdir(path) and not os.path.islink(path):
            for inner in sorted(os.listdir(path)):
                relative = f"{name}/{inner}"
                mine = owned.owns(relative) and os.path.isfile(os.path.join(path, inner))
                (own if mine else foreign).append(relative)
        elif owned.owns(name) and (os.path.isfile(path) or name in owned.names):
            own.append(name)
        else:
            foreign.append(name + ("/" if os.path.isdir(path) else ""))
    return Survey(own, foreign, marker_command(out_dir))


def marker_command(out_dir: str) -> str | None:
    """The command a folder's marker names (None: no marker)."""
    try:
        with open(os.path.join(out_dir, MARKER_NAME), encoding="utf-8") as handle:
            command = json.load(handle).get("command")
    except (OSError, ValueError, AttributeError):
        return None
    return command if isinstance(command, str) else None


def _named(entries: list[str]) -> str:
    shown = ", ".join(entries[:MAX_NAMED])
    return shown + (f" and {len(entries) - MAX_NAMED} more" if len(entries) > MAX_NAMED else "")


def check(out_dir: str, owned: Owned, overwrite: bool) -> Survey | None:
    """What `claim` would refuse, raised as `ConfigError`, without writing anything; the folder's
    survey (None when it does not exist yet or is remote)."""
    if "://" in out_dir:
        return None
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ConfigError(f"--out {out_dir} is a file, not a folder: name a new or empty folder")
    if not os.path.isdir(out_dir):
        return None
    found = survey(out_dir, owned)
    if found.marker is not None and found.marker != owned.command:
        raise ConfigError(f"--out {out_dir} holds the output of `corpus {found.marker}`; name another folder "
                          f"for `corpus {owned.command}`")
    if found.foreign and not overwrite:
        raise ConfigError(f"--out {out_dir} holds files `corpus {owned.command}` did not write "
                          f"({_named(found.foreign)}); name a new or empty folder, or pass --overwrite to "
                          f"replace only the command's own files there")
    if owned.finished in found.own and not overwrite:
        raise ConfigError(f"{out_dir} already holds a finished {owned.command} output ({owned.finished}); "
                          f"pass --overwrite to replace it")
    return found


def claim(out_dir: str, owned: Owned, overwrite: bool) -> None:
    """Make `out_dir` ready for the command (see the module docstring); `ConfigError` otherwise."""
    if "://" in out_dir:
        return
    found = check(out_dir, owned, overwrite)
    os.makedirs(out_dir, exist_ok=True)
    clear(out_dir, owned, found)
    with open(os.path.join(out_dir, MARKER_NAME), "w", encoding="utf-8") as handle:
        handle.write(json.dumps({"command": owned.command}) + "\n")


def clear(out_dir: str, owned: Owned, found: Survey | None = None) -> None:
    """Remove the command's own files from a local folder: the finished marker first, so the folder
    never looks finished while it is being emptied."""
    found = found or survey(out_dir, owned)
    ordered = sorted(found.own, key=lambda r: (r != owned.finished, r))
    for relative in ordered:
        if relative == MARKER_NAME:
            continue
        path = os.path.join(out_dir, *relative.split("/"))
        if os.path.isdir(path):
            shutil.rmtree(path)  # a folder the command writes whole (e.g. `.filter-parts`)
        elif os.path.exists(path):
            os.unlink(path)
    for folder in sorted(owned.subfolders):
        path = os.path.join(out_dir, folder)
        if os.path.isdir(path) and not os.listdir(path):
            os.rmdir(path)
