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


TASK_FAILURE_LOGS = (
    ("distributed.worker", "Compute Failed"),  # a failed task, with its traceback
    ("distributed.worker.state_machine", "Async instruction for"),  # a task cancelled as the run closes
    # the scheduler closed before the worker as the run closed: a traceback after "interrupted"
    # (2 of 11 Ctrl-C's of the default build, 2026-12-06)
    ("distributed.worker", "Failed to communicate with scheduler during heartbeat"),
)
"""The loggers and message starts of a Dask worker's records of a task that failed or was cancelled,
and of its heartbeat lost as the runner closes its cluster."""


class DropMessages(logging.Filter):
    """A log filter that drops the records whose message starts with `prefix`."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def quiet_task_failures() -> None:
    """Run on each worker of the runner's own LocalCluster: drop the worker's records of a failed
    task ("Compute Failed", a traceback apiece, in the user's terminal), of a cancelled one and of a
    heartbeat lost as the cluster closes (`TASK_FAILURE_LOGS`). The
    driver reports a failed task itself, one line or its traceback with --debug, and cancels tasks
    only when the run fails or is interrupted; the tasks an interrupted run's close cut short (a
    P2P shuffle's unpack) were logged that way after "interrupted". Idempotent."""
    for name, prefix in TASK_FAILURE_LOGS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropMessages) and f.prefix == prefix for f in logger.filters):
            logger.addFilter(DropMessages(prefix))
