"""Ctrl-C around the processes a runner starts: they inherit SIGINT ignored (the driver handles it
and closes them), and a library's logger is kept quiet while an interrupted run closes; on the
runner's own Dask workers, the failed-task log the driver reports itself is dropped."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import typing as t


@contextlib.contextmanager
def sigint_ignored() -> t.Iterator[None]:
    """SIGINT ignored while the block runs (in the main thread only: elsewhere nothing changes),
    so the processes it starts inherit the ignored disposition."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def quiet_logger(name: str) -> t.Iterator[None]:
    """The named logger (and its children) silent while the block runs."""
    logger = logging.getLogger(name)
    previous = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(previous)


TASK_FAILURE_LOG = ("distributed.worker", "Compute Failed")
"""The logger and message start of a Dask worker's record of a failed task, with its traceback."""


class DropMessages(logging.Filter):
    """A log filter that drops the records whose message starts with `prefix`."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def quiet_task_failures() -> None:
    """Run on each worker of the runner's own LocalCluster: drop the worker's "Compute Failed"
    records (a traceback apiece, in the user's terminal). The driver reports a failed task itself,
    one line or its traceback with --debug; the tasks an interrupted run's close cuts short (a P2P
    shuffle's unpack) failed that way after "interrupted". Idempotent."""
    name, prefix = TASK_FAILURE_LOG
    logger = logging.getLogger(name)
    if not any(isinstance(f, DropMessages) and f.prefix == prefix for f in logger.filters):
        logger.addFilter(DropMessages(prefix))
