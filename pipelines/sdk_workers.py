"""The DirectRunner's multi_processing workers, started while the driver builds the graph.

Beam's multi_processing mode starts `python -m apache_beam.runners.worker.sdk_worker_main` for each
worker when the first stage runs, after the driver has built and translated the graph; each worker
then imports Beam and, while unpickling the first DoFns, the build's modules (seconds of CPU in
every worker, while the driver waits). Here `WarmWorkers` starts the workers as soon as the pipeline
is created, forked from the driver (they share the modules it has imported and the kernels and
tokenizer it has loaded) or, where the driver already runs other threads, spawned from this module
(each then loads them itself); then each waits for its settings on a pipe. When the FnApiRunner
starts a worker, `WarmWorkerHandler` (the handler of the `WARM_SUBPROCESS_URN` environment) hands one
of them what Beam hands its subprocess in the environment (the control and logging addresses, the
options, the worker id) and waits for it to end, as Beam waits for its own subprocess. A worker
asked for with none waiting (a runner that asks for more workers than were started) is spawned
then: slower, never different.

A worker leaves with `os._exit` once the harness has returned and its logs are flushed: the
interpreter's teardown (freeing every object of the run) does nothing for the build, and Beam stops
its workers one after the other, each waiting for the last to exit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import weakref
from typing import IO, Any

from apache_beam.portability.api import beam_fn_api_pb2
from apache_beam.runners.portability import local_job_service
from apache_beam.runners.portability.fn_api_runner import execution, fn_runner, worker_handlers
from apache_beam.transforms import environments

from lemur_corpus.errors import WORKER_LOST
from lemur_corpus.pipelines.flatten_sinks import SinkingFnApiRunner
from lemur_corpus.pipelines.worker_memory import map_large_blocks

log = logging.getLogger("corpus")

WARM_SUBPROCESS_URN = "lemur_corpus:env:warm_subprocess:v1"
"""An SDK environment whose payload names a `WarmWorkers` of the driver process."""

_POOLS: dict[str, WarmWorkers] = {}
"""The driver's live pools by id: the FnApiRunner builds worker handlers from the environment's
payload alone."""

HOW_STARTED = "LEMUR_CORPUS_SDK_WORKER"
"""Set in a worker's environment: `forked` or `spawned`."""


def worker_command() -> list[str]:
    return [sys.executable, "-m", __name__]


class WorkerProcess:
    """A worker process waiting for its settings on a pipe (its stdin when spawned)."""

    def __init__(self, pid: int, pipe: IO[bytes], popen: subprocess.Popen[bytes] | None = None) -> None:
        self.pid, self._pipe, self._popen = pid, pipe, popen
        self.returncode: int | None = None

    def hand(self, settings: dict[str, str]) -> None:
        """Give the worker its harness's settings: it starts the harness."""
        self._pipe.write(json.dumps(settings).encode("utf-8") + b"\n")
        self._pipe.close()

    def dismiss(self) -> None:
        """End of input before any settings: the worker leaves without starting a harness."""
        self._pipe.close()

    def poll(self) -> int | None:
        if self.returncode is None:
            if self._popen is not None:
                self.returncode = self._popen.poll()
            else:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(worker_command(), timeout or 0)
            time.sleep(0.02)
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.wait()


class WarmWorkers:
    """`count` worker processes, started now; each waits for the harness's settings.

    Forked from the driver when it runs no other thread yet (the usual case: `beam_pipeline` is
    called before anything starts a thread), so a worker shares the driver's imported modules
    instead of importing them again; otherwise (a driver that has run pipelines before keeps Beam's
    threads) spawned as `python -m lemur_corpus.pipelines.sdk_workers`. Forking a process with
    other Python threads could copy a lock some thread holds."""

    def __init__(self, count: int) -> None:
        self.id = f"{os.getpid()}-{id(self):x}"
        self._lock = threading.Lock()
        fork = hasattr(os, "fork") and threading.active_count() == 1
        if fork and count:
            prepare()  # once, here: the forked workers inherit what it loaded
        self._waiting: list[WorkerProcess] = []
        self._taken: list[WorkerProcess] = []
        for _ in range(count):
            self._waiting.append(_forked(self._waiting) if fork else _spawned())
        _POOLS[self.id] = self
        self._finalizer = weakref.finalize(self, _close, self.id, self._waiting)

    def take(self) -> WorkerProcess:
        """A waiting worker, or one started now (spawned) when none is left."""
        with self._lock:
            process = self._waiting.pop(0) if self._waiting else _spawned()
            self._taken.append(process)
            return process

    def lost(self) -> list[tuple[int, int]]:
        """(pid, exit status) of the workers the run took that have ended other than as asked (0) or
        by Ctrl-C (130); a negative status is the signal that killed one. Asked after the run
        failed; a worker still running is not lost, and is not waited for."""
        ended = [(process.pid, status) for process in self._taken if (status := _end_of(process)) is not None]
        return [(pid, status) for pid, status in ended if status not in (0, 130)]

    def close(self) -> None:
        """Tell the workers nobody took to leave, and wait for them."""
        self._finalizer()


def _end_of(process: WorkerProcess, patience: float = 1.0) -> int | None:
    """How `process` ended (its exit status, or minus the signal that killed it), or None while it
    runs. Looked at without reaping it (its handler thread does that, and records the status)."""
    if process.returncode is not None or not hasattr(os, "waitid"):
        return process.returncode
    try:
        info = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:  # reaped this instant by its handler thread, which records the status
        deadline = time.monotonic() + patience
        while process.returncode is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return process.returncode
    if info is None:
        return None
    return -info.si_status if info.si_code in (os.CLD_KILLED, os.CLD_DUMPED) else info.si_status


def _spawned() -> WorkerProcess:
    # stdout and stderr are the driver's, as Beam's own worker subprocesses' are
    popen = subprocess.Popen(worker_command(), stdin=subprocess.PIPE, env={**os.environ, HOW_STARTED: "spawned"})
    assert popen.stdin is not None
    return WorkerProcess(popen.pid, popen.stdin, popen)


def _forked(siblings: list[WorkerProcess]) -> WorkerProcess:
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()  # or the worker would write the driver's pending output a second time
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the worker: it never returns into the driver's code
        code = 1
        try:
            os.close(write_fd)
            for sibling in siblings:  # or a sibling would never see the end of its pipe
                sibling.dismiss()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.environ[HOW_STARTED] = "forked"
            with os.fdopen(read_fd, "rb") as pipe:
                code = serve(pipe, prepared=True)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(read_fd)
    return WorkerProcess(pid, os.fdopen(write_fd, "wb"))


def _close(pool_id: str, waiting: list[WorkerProcess]) -> None:
    _POOLS.pop(pool_id, None)
    for process in waiting:
        process.dismiss()
    for process in waiting:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    waiting.clear()


@environments.Environment.register_urn(WARM_SUBPROCESS_URN, bytes)
class WarmSubprocessEnvironment(environments.SubprocessSDKEnvironment):
    """Beam's subprocess environment whose workers come from a `WarmWorkers` (its id the payload)."""

    def to_runner_api_parameter(self, context: Any) -> tuple[str, bytes]:
        return WARM_SUBPROCESS_URN, self.command_string.encode("utf-8")

    @staticmethod
    def from_runner_api_parameter(payload: bytes, capabilities: Any, artifacts: Any, resource_hints: Any,
                                  context: Any) -> WarmSubprocessEnvironment:
        return WarmSubprocessEnvironment(payload.decode("utf-8"), capabilities, artifacts, resource_hints)

    @classmethod
    def of(cls, pool: WarmWorkers) -> WarmSubprocessEnvironment:
        return cls(pool.id, capabilities=environments.python_sdk_capabilities(), artifacts=())


class WarmSdkWorker(local_job_service.SubprocessSdkWorker):
    """Beam's `SubprocessSdkWorker` (one worker subprocess and its logging server) with the process
    taken from a pool instead of started here."""

    on_lost: Any = None
    """Called with an error when the worker process ends other than as asked or by Ctrl-C."""

    def run(self) -> None:
        import grpc
        from apache_beam.portability.api import beam_fn_api_pb2_grpc, endpoints_pb2
        from apache_beam.utils import thread_pool_executor
        from google.protobuf import json_format, text_format

        options = [("grpc.http2.max_pings_without_data", 0), ("grpc.http2.max_ping_strikes", 0)]
        logging_server = grpc.server(thread_pool_executor.shared_unbounded_instance(), options=options)
        logging_port = logging_server.add_insecure_port("[::]:0")
        logging_server.start()
        beam_fn_api_pb2_grpc.add_BeamFnLoggingServicer_to_server(local_job_service.BeamFnLoggingServicer(),
                                                                  logging_server)
        settings = {
            "CONTROL_API_SERVICE_DESCRIPTOR": text_format.MessageToString(
                endpoints_pb2.ApiServiceDescriptor(url=self._control_address)),
            "LOGGING_API_SERVICE_DESCRIPTOR": text_format.MessageToString(
                endpoints_pb2.ApiServiceDescriptor(url=f"localhost:{logging_port}")),
            "PIPELINE_OPTIONS": json_format.MessageToJson(self._provision_info.provision_info.pipeline_options),
        }
        if self._worker_id:
            settings["WORKER_ID"] = self._worker_id
        pool = _POOLS.get(self._worker_command_line)
        process = pool.take() if pool else _spawned()
        try:
            with contextlib.suppress(OSError):  # a worker that has already ended: its pipe is closed
                process.hand(settings)
            # Beam raises here, in a thread nobody joins for errors: the harness has already
            # reported a failure to the runner, and on Ctrl-C (status 130) the driver reports it
            if process.wait() not in (0, 130):
                WORKER_LOST.set()
                log.error("SDK worker %s (pid %d) exited with status %d", self._worker_id, process.pid,
                          process.returncode)
                if self.on_lost is not None:
                    self.on_lost(RuntimeError(f"SDK worker pid {process.pid} ended with status {process.returncode}"))
        finally:
            process.kill()
            logging_server.stop(0)


@worker_handlers.WorkerHandler.register_environment(WARM_SUBPROCESS_URN, bytes)
class WarmWorkerHandler(worker_handlers.SubprocessSdkWorkerHandler):
    """Beam's subprocess worker handler, its worker a `WarmSdkWorker`."""

    def _fail_instructions(self, error: Exception) -> None:
        """The worker process ended before the run: every instruction sent to it, now or later,
        fails with `error`. Beam would wait for the answers forever when the worker died before
        it connected (a data channel that closes early fails the bundle, a missing one does not);
        the driver then names the worker and how it ended (`OfflineDirectRunner`)."""
        connection = self.control_conn

        def answer(future: Any) -> Any:
            # an answer with an error, not an aborted future: the runner's wait for a bundle's data
            # gives up once its instruction is answered with an error, never on an aborted one
            future.set(beam_fn_api_pb2.InstructionResponse(instruction_id=future.instruction_id, error=str(error)))
            return future

        def push(request: Any) -> Any:
            if not isinstance(request, beam_fn_api_pb2.InstructionRequest):  # the end-of-run marker
                return None
            return answer(worker_handlers.ControlFuture(request.instruction_id or "lost"))

        connection.push = push  # type: ignore[method-assign,assignment]  # this connection only: its worker is gone
        for future in list(connection._futures_by_id.values()):
            answer(future)

    def start_worker(self) -> None:
        self.worker = WarmSdkWorker(self._worker_command_line, self.control_address, self.provision_info,
                                    self.worker_id)
        self.worker.on_lost = self._fail_instructions
        # a daemon: a driver that ends abnormally is not kept alive waiting for its workers (they
        # end with it: their control channel or their pipe closes)
        self.worker_thread = threading.Thread(name="run_worker", target=self.worker.run, daemon=True)
        self.worker_thread.start()


class WarmFnApiRunner(SinkingFnApiRunner):
    """The FnApiRunner (its Flattens sunk: `flatten_sinks`) with its multi_processing workers from
    `pool`. `FnApiRunner.run_pipeline` sets its default environment from `--direct_running_mode` (a
    plain subprocess one for multi_processing); this runner keeps the warm one."""

    def __init__(self, pool: WarmWorkers, **kwargs: Any) -> None:
        self._warm_environment = WarmSubprocessEnvironment.of(pool)
        super().__init__(**kwargs)

    @property  # an attribute of FnApiRunner, fixed here
    def _default_environment(self) -> environments.Environment:
        return self._warm_environment

    @_default_environment.setter
    def _default_environment(self, _environment: environments.Environment) -> None:
        pass

    def run_stages(self, stage_context: Any, stages: Any) -> Any:
        """Beam's, with the collections the driver holds between stages on disk (`spilled_buffers`):
        the runner makes its buffers from the module globals swapped here for the run."""
        from lemur_corpus.pipelines import spilled_buffers

        # Beam's module globals (classes), for this run only.
        execution.ListBuffer = fn_runner.ListBuffer = spilled_buffers.SpilledListBuffer  # type: ignore[misc]  # a class
        execution.GroupingBuffer = spilled_buffers.SpilledGroupingBuffer  # type: ignore[misc]  # a class
        try:
            with map_large_blocks():  # the heaps do not grow for the driver's chunks and bundles
                return super().run_stages(stage_context, stages)
        finally:
            execution.ListBuffer = fn_runner.ListBuffer = spilled_buffers.BeamListBuffer  # type: ignore[misc]  # a class
            execution.GroupingBuffer = spilled_buffers.BeamGroupingBuffer  # type: ignore[misc]  # a class

    def _get_bundle_manager(self, bundle_context_manager: Any) -> Any:
        """Beam's choice, except that a stage run in parallel is cut into bundles of bounded size
        (`pipelines/bounded_bundles.py`) rather than into one bundle per worker."""
        from lemur_corpus.pipelines.bounded_bundles import BoundedBundleManager

        manager = super()._get_bundle_manager(bundle_context_manager)
        if type(manager) is not fn_runner.ParallelBundleManager:
            return manager
        return BoundedBundleManager(bundle_context_manager, self._progress_frequency,
                                    cache_token_generator=manager._cache_token_generator)


# ---------------------------------------------------------------------------------------------
# The worker process


def prepare() -> None:
    """What a worker would otherwise do on its first bundles: import the harness. The driver does
    it once before it forks the workers, which also inherit
    the modules of the build's DoFns and the build's tokenizer (loaded by the driver for its checks
    and kept by `lemur_corpus.tokenizer.load_tokenizer`); a spawned worker does it itself. Both
    answer Beam's per-stage DoFn introspection once per class (`dofn_specs`), end bundles
    without waiting out Beam's state sampler (`state_sampler`), hand back the memory a bundle
    freed and send a bundle's output in 2 MB pieces (`worker_memory`)."""
    import apache_beam.runners.worker.sdk_worker_main  # noqa: F401

    from lemur_corpus.pipelines.dofn_specs import remember_dofn_specs
    from lemur_corpus.pipelines.state_sampler import shorten_sampling_period
    from lemur_corpus.pipelines.worker_memory import flush_outputs_at, trim_after_each_bundle

    remember_dofn_specs()
    shorten_sampling_period()
    trim_after_each_bundle()
    flush_outputs_at()


def warm_kernels() -> None:
    """Load the MinHash kernels (compiled and cached on disk by numba; loading them still sets up
    numba's compiler, about 0.4 s). Each worker does it as it starts, while the driver builds and
    translates the graph, rather than the driver before it forks them (a driver with workers runs
    no DoFn)."""
    from lemur_corpus.dedup.minhash import MinHasher

    MinHasher(2, 1, "xxh32").sign("warm up the kernels", "words", 1, 10)  # and the word table it reads


def _leave_interrupted(_signum: int, _frame: Any) -> None:
    os._exit(130)


def serve(pipe: IO[bytes], prepared: bool = False) -> int:
    """A worker's life: prepare (unless its driver did), wait for the settings on `pipe`, run the
    harness; its exit status."""
    # Ctrl-C reaches every process of the group: the worker leaves at once, as Beam's own worker
    # processes do, and the driver reports it. (A worker that outlived it could block on a data
    # channel the interrupted driver no longer reads, and the driver would wait for it.)
    signal.signal(signal.SIGINT, _leave_interrupted)
    if not prepared:
        prepare()
    warm_kernels()
    line = pipe.readline()
    if not line.strip():  # the driver needed no more workers, or has ended
        return 0
    os.environ.update(json.loads(line))
    from apache_beam.runners.worker import sdk_worker_main

    try:
        sdk_worker_main.main(sys.argv)
        code = 0
    except BaseException:  # the harness has logged it to the driver; this is the process's stderr
        traceback.print_exc()
        code = 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def main() -> int:
    os._exit(serve(sys.stdin.buffer))


if __name__ == "__main__":
    sys.exit(main())
