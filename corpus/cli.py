"""`corpus`: the one command-line entry point. Each sub-command lives in `corpus/commands/`.

Errors the user can fix (config, arguments, input files) print one clear message and exit 2;
`--debug` shows the traceback too.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import NoReturn

from lemur_corpus.errors import WORKER_LOST, CorpusError, interrupted

COMMANDS = ("build", "validate", "audit", "manifests", "dedup", "dedup_index", "filter", "decontam")


class _QuietBeamImports(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "apitools" not in record.getMessage()


def setup_logging(verbose: bool) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname).1s %(message)s", "%H:%M:%S"))
    handler.addFilter(_QuietBeamImports())
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("corpus").setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("apache_beam", "distributed", "datasets", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.ERROR)
    # distributed sets its loggers' levels from dask's config when it is first imported (after this:
    # the runner imports it), to INFO, and a Dask build then printed the scheduler's routine lines (its
    # start, two warnings per P2P shuffle); the config, set here, also reaches the worker processes of
    # the LocalCluster the runner starts. A user's own setting wins.
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "info" if verbose else "error")
    # Beam logs a failed bundle's traceback at ERROR before the error reaches us; the user gets our one
    # line for it (and the traceback with --debug), so without --debug Beam speaks only when it is fatal.
    logging.getLogger("apache_beam").setLevel(logging.DEBUG if verbose else logging.CRITICAL)


class _Version(argparse.Action):
    """`corpus --version`: computed only when asked (it may run git)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        from lemur_corpus.manifest import code_version

        code = code_version()
        revision = code["git_commit"] or "no git checkout"
        dirty = " (uncommitted changes)" if code["git_dirty"] else ""
        print(f"corpus (lemur-corpus) {code['version']}, code {revision}{dirty}")
        parser.exit(0)


def parser() -> argparse.ArgumentParser:
    import importlib

    top = argparse.ArgumentParser(
        prog="corpus",
        description="Build a Lemur-style code+text pretraining corpus: read, filter, dedup, tokenize, "
        "mix to exact token weights, write Megatron shards and an auditable manifest.",
    )
    top.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    top.add_argument("--version", action=_Version, nargs=0,
                     help="print the package version and the code revision (as a manifest records them)")
    sub = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"lemur_corpus.commands.{name}").register(sub)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    argv_given = argv
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after a bare `--` belongs to Beam, unchanged.
    passthrough: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1 :]
    args = parser().parse_args(argv)
    args.beam_args = passthrough
    setup_logging(args.debug)
    logging.getLogger().handlers[0].addFilter(_QuietBeamImports())
    code = _run(args, as_program=argv_given is None)
    if argv_given is None and signal.getsignal(signal.SIGINT) in (signal.default_int_handler, _remember_interrupt):
        # The command is done, but the interpreter may still wait for the runner's threads: a Ctrl-C
        # from here on ends the process at once with 130, as during the run, not by the signal.
        signal.signal(signal.SIGINT, _interrupted_after_the_run)
    return code


def _run(args: argparse.Namespace, as_program: bool) -> int:
    try:
        return int(args.func(args) or 0)
    except CorpusError as exc:
        if args.debug:
            raise
        if interrupted(exc):
            return _interrupted(as_program)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BaseException as exc:
        # Ctrl-C reaches us as KeyboardInterrupt, or wrapped by the runner that caught it in a worker
        if not interrupted(exc) or args.debug:
            raise
        return _interrupted(as_program)


def _interrupted_after_the_run(signum: int, frame: object) -> None:
    """A Ctrl-C after the command returned: its output is whatever the command made of it (complete
    when it succeeded), the exit status 130."""
    print("interrupted (after the command had finished)", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


def _interrupted(as_program: bool) -> int:
    """`interrupted`, the last line, and 130. As the program (not called by a test), the process is
    about to end: a Ctrl-C that reaches it from here on (a second one, or one Python delivers late,
    while the interpreter waits for the runner's threads) is ignored, not printed as a traceback
    after `interrupted`."""
    _INTERRUPTED.set()
    if as_program:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    print("interrupted", file=sys.stderr)
    return 130


_INTERRUPTS: list[int] = []
"""The Ctrl-Cs the program received (`_remember_interrupt`)."""

_INTERRUPTED = threading.Event()
"""Set once the program knows it was interrupted (a Ctrl-C it received, or one a worker reported)."""


def _thread_failures_cause() -> str | None:
    """Why the runner's threads fail, when the program knows: the interrupt, or a worker process
    the run lost (`errors.WORKER_LOST`)."""
    return "the interrupt" if _INTERRUPTED.is_set() else "the lost worker process" if WORKER_LOST.is_set() else None


THREAD_ERROR_GRACE_S = 2.0
"""How long a thread that failed waits for the interrupt or the lost worker that may have caused it
before it prints its traceback. The SIGINT reaches the worker processes and the driver together; a
driver thread that was reading from a worker can fail a moment before the driver's main thread
handles it, or reports the worker it lost (later on a loaded machine: the margin is generous, and
costs only a delay in a run that was neither)."""


def _remember_interrupt(signum: int, frame: object) -> None:
    """Python's own SIGINT handler (raise KeyboardInterrupt), remembering that it ran: where the
    exception lands in code that swallows exceptions (a finalizer run by the garbage collector, a
    callback: Python prints "Exception ignored" and goes on), the program still ends with 130."""
    _INTERRUPTS.append(signum)
    _INTERRUPTED.set()
    raise KeyboardInterrupt


class QuietAfterAKnownCause:
    """A `threading.excepthook` that drops what a thread raised because the run was interrupted or
    lost a worker process.

    A Ctrl-C ends the worker processes at once, and the system's out-of-memory killer ends one; the
    runner's threads that were reading from them (Beam's gRPC data and control readers) then fail, and
    Python would print their tracebacks around the program's last line (`interrupted`, or the error
    naming the lost worker). They are consequences of what that line says, not news: without
    `--debug` they go to the debug log. A thread that fails in a run that was neither has its
    traceback printed by `hook` (Python's), after `THREAD_ERROR_GRACE_S`, or by `flush` when the
    program ends before then."""

    def __init__(self, hook: Callable[[threading.ExceptHookArgs], object]) -> None:
        self.hook = hook
        self.pending: list[threading.ExceptHookArgs] = []
        self.lock = threading.Lock()

    def __call__(self, failure: threading.ExceptHookArgs) -> None:
        with self.lock:
            self.pending.append(failure)
        deadline = time.monotonic() + THREAD_ERROR_GRACE_S
        while _thread_failures_cause() is None and time.monotonic() < deadline:
            _INTERRUPTED.wait(0.05)
        self._settle(failure)

    def flush(self) -> None:
        """What failed threads still wait to say, said now (the program is ending)."""
        with self.lock:
            waiting = list(self.pending)
        for failure in waiting:
            self._settle(failure)

    def _settle(self, failure: threading.ExceptHookArgs) -> None:
        with self.lock:
            if not any(f is failure for f in self.pending):
                return  # `flush` or the thread itself has settled it
            self.pending = [f for f in self.pending if f is not failure]
        cause = _thread_failures_cause()
        if cause is None:
            self.hook(failure)
            return
        thread = failure.thread.name if failure.thread is not None else "a thread"
        logging.getLogger("corpus").debug("after %s, %s raised %s: %s", cause, thread,
                                          failure.exc_type.__name__, failure.exc_value)


def program() -> NoReturn:
    """The `corpus` program: `main`, then the process ends at once with its status.

    Once a command has returned, its outputs are written and closed; what the interpreter would still
    do is tear down every module (Beam, numba, pandas, ...) and collect their objects, about half a
    second of a short run (`corpus dedup` of 50 documents: 0.6 s between the command's return and the
    process's end). The exit handlers Python would run (registered with `atexit`) and the logging
    handlers' flushes still run here; then `os._exit`. An exception (`--debug`, a bug) leaves the
    ordinary way, with its traceback.

    A Ctrl-C is 130 from the first line on: one that arrives while the command line is parsed (the
    commands' modules are imported then) is `interrupted`, not a traceback; one that Python swallowed
    during a command that then succeeded is `interrupted (...)` and 130 too, its output complete;
    what the runner's threads raise because of the Ctrl-C (or of a worker process the run lost) is not
    printed around that last line."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _remember_interrupt)
    quiet = QuietAfterAKnownCause(threading.excepthook)
    if "--debug" not in sys.argv:
        threading.excepthook = quiet
    try:
        code = main()
    except KeyboardInterrupt:
        if "--debug" in sys.argv:
            raise
        code = _interrupted(as_program=True)
    quiet.flush()
    if code == 0 and _INTERRUPTS:
        print("interrupted (the command had finished: its output is complete)", file=sys.stderr)
        code = 130
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader that has gone (`| head`), a closed stream
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    program()
