"""Ctrl-C around the processes a runner starts: they inherit SIGINT ignored (the driver handles it
and closes them), and a library's logger is kept quiet while an interrupted run closes."""

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
