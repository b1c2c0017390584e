"""Errors that reach the user as one clear line, never as a traceback from inside Beam."""

from __future__ import annotations

import signal
import threading
from collections.abc import Mapping
from typing import Any


def file_error_line(path: str, reason: str, line: int | None = None) -> str:
    """The one format of an input file's error: `PATH, line N: REASON`, or `PATH: REASON`."""
    where = f"{path}, line {line}" if line is not None else path
    return f"{where}: {reason}"


def file_error_dict_line(error: Mapping[str, Any]) -> str:
    """`file_error_line` of an error in the dict form `InputFileError.to_dict()` gives (as it
    travels through a pipeline); a missing (or zero) line is left out."""
    return file_error_line(error["path"], error["reason"], error.get("line") or None)


class CorpusError(Exception):
    """Base of every error the command line reports as a message (exit code 2)."""


class ConfigError(CorpusError):
    """The configuration or the command-line arguments are wrong; raised before any data is read."""


WORKER_LOST = threading.Event()
"""Set in the driver when one of a run's worker processes ends before the run does (killed: most
often by the out-of-memory killer; `pipelines/sdk_workers.py` sees it within 20 ms). The runner's
threads that read from that worker fail at once, seconds before the run itself fails with
`WorkerLostError`: the `corpus` program reads this to keep their tracebacks from burying the one line
that names the worker. Never cleared: the program runs one command per process, and nothing else reads it."""


class WorkerLostError(CorpusError):
    """A worker process of the run ended before the run did (killed: most often by the system's
    out-of-memory killer), so the run failed; names each one and how it ended."""

    def __init__(self, lost: list[tuple[int, int]]) -> None:
        self.lost = lost
        ends = "; ".join(f"pid {pid} {_how_it_ended(status)}" for pid, status in lost)
        super().__init__(f"{len(lost)} worker process(es) ended during the run: {ends}. A worker killed by "
                         "SIGKILL was most likely out of memory: give the run more memory or fewer "
                         "workers (--direct_num_workers)")


def _how_it_ended(status: int) -> str:
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"was killed by {name}"
    return f"exited with status {status}"


class SpillError(CorpusError):
    """The driver could not write the temporary file in which it keeps a collection between two stages
    (`pipelines/spilled_buffers.py`): most often its folder (TMPDIR) is full."""

    def __init__(self, folder: str, reason: str) -> None:
        super().__init__(f"cannot write the run's temporary data in {folder}: {reason}. The multi_processing "
                         "runner keeps the collections between its stages there: set TMPDIR to a folder with "
                         "more room")


class InputFileError(CorpusError):
    """A whole input file cannot be used (missing, unreadable, corrupted, empty): the build stops."""

    def __init__(self, path: str, reason: str, line: int | None = None) -> None:
        self.path = path
        self.reason = reason
        self.line = line
        super().__init__(file_error_line(path, reason, line))

    def to_dict(self) -> dict[str, object]:
        return {"path": self.path, "line": self.line, "reason": self.reason}


def caused_by_interrupt(exc: BaseException) -> bool:
    """Whether `exc` is a KeyboardInterrupt or one is in its chain (`__cause__`, `__context__`): also
    an interrupt that a native library reported as its own error (numba turns one raised in the
    Python it calls back into a SystemError whose context is the KeyboardInterrupt)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def interrupted(exc: BaseException) -> bool:
    """Whether `exc` is, or was caused by, Ctrl-C: runners re-raise a worker's KeyboardInterrupt
    wrapped in their own exceptions, which would otherwise reach the user as a long traceback; one
    from another process arrives as text (its traceback in the message). For what a run's own code
    raised (a filter's error, whose message may quote a document's text), `caused_by_interrupt`."""
    return caused_by_interrupt(exc) or "KeyboardInterrupt" in str(exc)
