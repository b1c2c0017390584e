"""A real Dask cluster on this machine: one `dask scheduler` and N `dask worker` processes over TCP.

Not a `LocalCluster` inside the driver: the scheduler and every worker are separate processes started
from the command line, as on a cluster's nodes, and a build reaches them only through
`--dask_client_address=tcp://...`. The scheduler picks a free port itself (`--port 0`) and writes
its address to a scheduler file, which the workers and the build read; workers pick theirs too. The
processes are stopped on exit, on an exception and on Ctrl-C (terminate, then kill after a grace).

    with DaskCluster(workers=2) as cluster:
        run_build(config, out, ["--runner=DaskRunner", f"--dask_client_address={cluster.address}"])
        cluster.worker_stats()  # per worker: CPU seconds and peak RSS so far

Workers run as `dask worker` runs them on a cluster, under a nanny (which restarts a worker that
dies and sets the same PYTHONHASHSEED in every worker); a worker's CPU and peak RSS
(`/proc/<pid>/status: VmHWM`) are read from the worker process itself (its pid asked of the worker),
its nanny's CPU added.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from lemur_corpus.pipelines.dask_runner import LOCAL_CLUSTER_CONFIG

START_TIMEOUT_S = 120.0

WORKER_ENV = {"DASK_DISTRIBUTED__WORKER__MEMORY__PAUSE": "False"}
"""Workers with a memory limit spill but do not pause. Dask pauses a worker (runs none of its tasks)
while its process memory is over 80% of the limit; but a worker's memory here is mostly unmanaged
(the imported modules and what the allocator keeps of freed objects), which spilling
cannot lower, so a pause can last for good: 200,000 documents of `benchmarks/dedup_scale.py` with 1
GiB per worker had not finished after 70 minutes with pausing on, and took 796.8 s with 1.5 GiB and
pausing off. Spilling (task results over 60% of the limit, process memory over 70%) bounds the memory."""


def dask_env(config: dict[str, Any]) -> dict[str, str]:
    """Dotted Dask settings as the environment variables a `dask worker` reads them from."""
    return {"DASK_" + key.upper().replace(".", "__").replace("-", "_"): str(value) for key, value in config.items()}


PROFILER_ENV = dask_env(LOCAL_CLUSTER_CONFIG)
"""Workers run with the settings of the runner's own LocalCluster (`dask_runner.LOCAL_CLUSTER_CONFIG`):
without distributed's statistical profiler, as the README advises for long builds. It keeps a profile
tree per second of the run, so a worker grows with the run's length (docs/measurements.md,
"distributed's profiler off, at size"). Figures in docs/measurements.md before 2026-12-03 were taken
with it on."""

MEMORY_MEASURES = ("managed", "spilled", "unmanaged")
"""What `DaskCluster.memory_sampled` samples (`distributed.scheduler.MemoryState`'s measures)."""


def _dask_command() -> list[str]:
    """The `dask` command of this interpreter's environment (workers must import lemur_corpus)."""
    exe = Path(sys.executable).with_name("dask")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "dask"]


def peak_rss_mib(pid: int) -> float:
    """A live process's peak resident set (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """A live process's user + system CPU seconds (/proc/<pid>/stat, clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stage_namer() -> Any:
    """A function naming the stage that makes a task (from its run_spec): the last transform of the chain
    it runs (`pipelines/dask_bundles.FusedSteps`), found in its arguments, or "" (the caller falls back on the
    task's prefix). Made at run time so that cloudpickle ships it by value to the scheduler and the
    workers, which need not import the benchmarks."""

    def stage(spec: Any, depth: int = 0) -> str:
        steps = getattr(spec, "steps", None)
        if steps:
            return str(steps[-1].label)
        inner = [*getattr(spec, "args", ()), *getattr(spec, "kwargs", {}).values(),
                 getattr(spec, "value", None)]  # a Task's arguments, a DataNode's value
        if isinstance(spec, (list, tuple, dict)) and len(spec) <= 16:  # a task's arguments, not data
            inner += spec.values() if isinstance(spec, dict) else spec
        for arg in inner if depth < 4 else ():
            found = stage(arg, depth + 1)
            if found:
                return found
        return ""

    return stage


class DaskCluster:
    """A scheduler and `workers` single-threaded worker processes, stopped on leaving the block."""

    def __init__(self, workers: int = 2, threads: int = 1, memory_limit: str = "0") -> None:
        """`memory_limit`: each worker's (`dask worker --memory-limit`, e.g. "1GiB"; "0": none). Over
        60% of it a worker spills task results to its local directory; it does not pause (`WORKER_ENV`)."""
        self.workers, self.threads, self.memory_limit = workers, threads, memory_limit
        self._tmp = tempfile.TemporaryDirectory(prefix="lemur-dask-")
        self.log_dir = Path(self._tmp.name)
        self.scheduler_file = Path(self._tmp.name) / "scheduler.json"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self.address = ""

    def _start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        path = self.log_dir / f"{name}.log"
        with path.open("wb") as log:
            process = subprocess.Popen([*_dask_command(), *args], stdout=log, stderr=subprocess.STDOUT,
                                       cwd=self._tmp.name, env={**os.environ, **(env or {})})
        self.processes.append(process)
        self.logs.append(path)
        return process

    def __enter__(self) -> DaskCluster:
        try:
            self._start("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                      "--scheduler-file", str(self.scheduler_file)])
            self._wait(lambda: self.scheduler_file.exists() and self.scheduler_file.stat().st_size > 0, "the scheduler")
            self.address = json.loads(self.scheduler_file.read_text())["address"]
            for k in range(self.workers):
                self._start(f"worker-{k}", [
                    "worker", "--scheduler-file", str(self.scheduler_file), "--host", "127.0.0.1",
                    "--nthreads", str(self.threads), "--no-dashboard", "--memory-limit", self.memory_limit,
                    "--name", f"worker-{k}", "--local-directory", str(Path(self._tmp.name) / f"worker-{k}")],
                    env={**PROFILER_ENV, **(WORKER_ENV if self.memory_limit != "0" else {})})
            self._wait(self._all_workers_joined, f"{self.workers} workers")
        except BaseException:
            self.close()
            raise
        return self

    def _all_workers_joined(self) -> bool:
        from dask.distributed import Client

        with Client(self.address, timeout=10) as client:
            return len(client.scheduler_info(n_workers=-1)["workers"]) >= self.workers

    def _wait(self, ready: Any, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            dead = [(p, log) for p, log in zip(self.processes, self.logs, strict=True) if p.poll() is not None]
            if dead:
                process, log = dead[0]
                raise RuntimeError(f"{what}: `{' '.join(map(str, process.args))}` exited with {process.returncode}:\n"
                                   + log.read_text(errors="replace")[-2000:])
            try:
                if ready():
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{what} did not start within {START_TIMEOUT_S:.0f} s")

    def worker_pids(self) -> list[int]:
        """The worker processes' pids (each a child of its nanny), in worker-name order."""
        from dask.distributed import Client

        with Client(self.address, timeout=10) as client:
            by_address = client.run(os.getpid)
            names = {a: w.get("name", a) for a, w in client.scheduler_info(n_workers=-1)["workers"].items()}
        return [by_address[a] for a in sorted(by_address, key=lambda a: str(names.get(a, a)))]

    def worker_stats(self) -> list[dict[str, float]]:
        """Per worker: CPU seconds (the worker process and its nanny) and the worker's peak RSS (MiB)."""
        nannies = [p.pid for p in self.processes[1:]]
        return [{"cpu_s": cpu_seconds(pid) + cpu_seconds(nanny), "peak_rss_mib": peak_rss_mib(pid)}
                for pid, nanny in zip(self.worker_pids(), nannies, strict=True)]

    @contextlib.contextmanager
    def memory_sampled(self, interval_s: float = 1.0) -> Iterator[dict[str, float]]:
        """Dask's own account of the workers' memory while the block runs (distributed's
        `MemorySampler`, every `interval_s`). On leaving, the dict holds the peaks, in MiB and summed
        over the workers, of `managed` (the task results they hold, as `dask.sizeof` weighs them),
        `spilled` (results they wrote to their local disks) and `unmanaged` (the rest of their
        processes' memory: modules, what the allocator keeps, a running task's own objects)."""
        from dask.distributed import Client
        from distributed.diagnostics import MemorySampler

        peaks: dict[str, float] = {}
        sampler = MemorySampler()
        with Client(self.address, timeout=10) as client, contextlib.ExitStack() as sampling:
            for measure in MEMORY_MEASURES:
                sampling.enter_context(sampler.sample(measure, client=client, measure=measure, interval=interval_s))
            yield peaks
        for measure in MEMORY_MEASURES:
            peaks[measure] = max(value for _, value in sampler.samples[measure]) / 2**20

    @contextlib.contextmanager
    def held_sampled(self, interval_s: float = 2.0) -> Iterator[dict[str, Any]]:
        """Which task results the workers hold, by the stage that made them, while the block runs
        (the scheduler polled every `interval_s`). A result is named by the last transform of the
        chain that made it (`pipelines/dask_bundles.FusedSteps`) or, for the runner's other tasks (a
        shuffle's transfers and unpacks, a Flatten, a read), by its task prefix. On leaving, the dict
        holds `peak_mib` (the most held at one poll, in memory or spilled, all workers together)
        and `at_peak` (that poll's MiB by stage, largest first)."""
        from dask.distributed import Client

        stage = _stage_namer()

        def held(dask_scheduler: Any) -> dict[str, int]:
            labels: dict[str, str] = {}
            by_stage: dict[str, int] = {}
            for task in dask_scheduler.tasks.values():
                if task.state != "memory":
                    continue
                group = task.group.name
                if group not in labels:
                    labels[group] = stage(task.run_spec) or task.prefix.name
                by_stage[labels[group]] = by_stage.get(labels[group], 0) + task.nbytes
            return by_stage

        samples: list[dict[str, int]] = []
        stop = threading.Event()

        def poll() -> None:
            with Client(self.address, timeout=10) as client:
                while not stop.wait(interval_s):
                    with contextlib.suppress(Exception):  # a poll during the scheduler's shutdown
                        samples.append(client.run_on_scheduler(held))

        result: dict[str, Any] = {}
        poller = threading.Thread(target=poll, name="held-poll", daemon=True)
        poller.start()
        try:
            yield result
        finally:
            stop.set()
            poller.join()
        peak = max(samples, key=lambda s: sum(s.values()), default={})
        result["peak_mib"] = sum(peak.values()) / 2**20
        result["at_peak"] = {k: v / 2**20 for k, v in sorted(peak.items(), key=lambda kv: -kv[1])}

    @contextlib.contextmanager
    def rss_by_running_stage(self, interval_s: float = 0.02) -> Iterator[dict[str, dict[str, Any]]]:
        """What each worker was running when its memory peaked, while the block runs. Every `interval_s`
        a thread in each worker reads the worker's resident set (/proc/self/statm) and names the stage
        of the task it is running ("between tasks": its event loop alone, e.g. receiving a shuffle's
        data or serving results). On leaving, the dict holds per worker name `peak_mib` (the highest
        sample), `stage` (what ran then), `by_stage` (each stage's highest sample, MiB, highest first),
        `held_mib` (per stage, the task results the worker held at that sample, in memory or
        spilled, as `dask.sizeof` weighs them) and `p2p_buffered_mib` (per stage, the bytes its P2P
        shuffles held at that sample, waiting to be sent to other workers or written to its disk:
        the memory limiters of distributed's worker extension "shuffle", capped by
        `distributed.p2p.comm.buffer` and `distributed.p2p.storage.buffer`) and `python_objects`
        (per stage, the blocks Python's small-object allocator had handed out at that sample,
        `sys.getallocatedblocks`: objects `dask.sizeof` can underweigh, e.g. many small records, and
        whose arenas glibc's trim cannot return); the rest is the running task's own objects and
        what the allocator keeps. `start_mib` (the first sample) and `rises_mib`
        (per stage, highest first: how far the resident set rose above its highest sample so far while
        the stage ran) say which stages took it to its peak: the allocator keeps what it took, so the
        stages that ran after a rise sample as high without having caused it. A peak shorter than the
        interval can be missed: `worker_stats` has the exact peak."""
        from dask.distributed import Client

        stage = _stage_namer()

        def start(dask_worker: Any, interval_s: float) -> None:
            from distributed.utils import key_split_group

            page = os.sysconf("SC_PAGE_SIZE")
            highest: dict[str, tuple[int, int, int, int]] = {}
            rises: dict[str, int] = {}
            top = [0, 0]  # the first sample, the highest so far
            labels: dict[str, str] = {}
            stop = threading.Event()

            def running() -> str:
                try:
                    tasks = list(dask_worker.state.executing)
                except RuntimeError:  # the set changed while it was copied: skip this sample
                    return ""
                for task in tasks:
                    group = key_split_group(task.key)
                    if group not in labels:
                        labels[group] = stage(task.run_spec) or task.prefix
                return " + ".join(sorted(labels[key_split_group(task.key)] for task in tasks)) or "between tasks"

            def p2p_buffered() -> int:
                plugin = getattr(dask_worker, "extensions", {}).get("shuffle")
                limiters = [getattr(plugin, name, None) for name in ("memory_limiter_comms", "memory_limiter_disk")]
                return sum(getattr(limiter, "_acquired", 0) for limiter in limiters)

            def sample() -> None:
                with open("/proc/self/statm") as statm:
                    while not stop.wait(interval_s):
                        statm.seek(0)
                        rss = int(statm.read().split()[1]) * page
                        name = running()
                        if name and rss > highest.get(name, (0, 0, 0, 0))[0]:
                            highest[name] = (rss, dask_worker.state.nbytes, p2p_buffered(), sys.getallocatedblocks())
                        if name and not top[0]:
                            top[:] = [rss, rss]
                        elif name and rss > top[1]:
                            rises[name] = rises.get(name, 0) + rss - top[1]
                            top[1] = rss

            thread = threading.Thread(target=sample, name="rss-by-running-stage", daemon=True)
            thread.start()
            dask_worker._lemur_rss_by_stage = (stop, thread, highest, rises, top)

        def finish(dask_worker: Any) -> tuple[dict[str, tuple[int, int, int, int]], dict[str, int], int]:
            stop, thread, highest, rises, top = dask_worker._lemur_rss_by_stage
            stop.set()
            thread.join()
            del dask_worker._lemur_rss_by_stage
            return highest, rises, top[0]

        result: dict[str, dict[str, Any]] = {}
        with Client(self.address, timeout=10) as client:
            names = {a: str(w.get("name", a)) for a, w in client.scheduler_info(n_workers=-1)["workers"].items()}
            client.run(start, interval_s=interval_s)
            try:
                yield result
            finally:
                highest_by_worker = client.run(finish)
        for address, (highest, rises, first) in sorted(highest_by_worker.items(),
                                                       key=lambda kv: names.get(kv[0], kv[0])):
            ranked = sorted(highest.items(), key=lambda kv: -kv[1][0])
            by_stage = {name: rss / 2**20 for name, (rss, _, _, _) in ranked}
            top = next(iter(by_stage.items()), ("", 0.0))
            result[names.get(address, address)] = {
                "peak_mib": top[1], "stage": top[0], "by_stage": by_stage,
                "held_mib": {name: held / 2**20 for name, (_, held, _, _) in ranked},
                "p2p_buffered_mib": {name: buffered / 2**20 for name, (_, _, buffered, _) in ranked},
                "python_objects": {name: blocks for name, (_, _, _, blocks) in ranked},
                "start_mib": first / 2**20,
                "rises_mib": {name: rise / 2**20 for name, rise in sorted(rises.items(), key=lambda kv: -kv[1])}}

    @contextlib.contextmanager
    def gc_timed(self) -> Iterator[dict[str, dict[str, float]]]:
        """How long each worker's cyclic garbage collector ran while the block runs (a `gc.callbacks`
        timer in each worker process). On leaving, the dict holds per worker name `gc_s` (every
        collection), `full_gc_s` (the collections of the oldest generation, which visit every object
        the worker holds), `collections` and `full_collections`."""
        from dask.distributed import Client

        def start(dask_worker: Any) -> None:
            import gc

            timed = {"gc_s": 0.0, "full_gc_s": 0.0, "collections": 0, "full_collections": 0}
            started = [0.0]

            def timer(phase: str, info: dict[str, int]) -> None:
                if phase == "start":
                    started[0] = time.perf_counter()
                    return
                took = time.perf_counter() - started[0]
                timed["gc_s"] += took
                timed["collections"] += 1
                if info.get("generation") == 2:
                    timed["full_gc_s"] += took
                    timed["full_collections"] += 1

            gc.callbacks.append(timer)
            dask_worker._lemur_gc_timer = (timer, timed)

        def finish(dask_worker: Any) -> dict[str, float]:
            import gc

            timer, timed = dask_worker._lemur_gc_timer
            gc.callbacks.remove(timer)
            del dask_worker._lemur_gc_timer
            return timed

        result: dict[str, dict[str, float]] = {}
        with Client(self.address, timeout=10) as client:
            names = {a: str(w.get("name", a)) for a, w in client.scheduler_info(n_workers=-1)["workers"].items()}
            client.run(start)
            try:
                yield result
            finally:
                timed = client.run(finish)
        for address, worker in sorted(timed.items(), key=lambda kv: names.get(kv[0], kv[0])):
            result[names.get(address, address)] = worker

    def task_seconds(self) -> dict[str, dict[str, float]]:
        """Seconds the cluster's tasks spent so far, by kind of task (the key's prefix, e.g.
        `run_bundle`: a Beam bundle; `shuffle-join`, `shuffle-group`: a tasks shuffle's steps) and
        activity (`compute`; `transfer`: waiting for inputs from other workers; `disk-read`...),
        as the scheduler records them (`TaskPrefix.all_durations`)."""
        from dask.distributed import Client

        def durations(dask_scheduler: Any) -> dict[str, dict[str, float]]:
            return {name: dict(prefix.all_durations) for name, prefix in dask_scheduler.task_prefixes.items()}

        with Client(self.address, timeout=10) as client:
            return client.run_on_scheduler(durations)  # type: ignore[no-any-return]  # what `durations` returns

    def close(self) -> None:
        for process in reversed(self.processes):  # workers first, the scheduler last
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = []
        self._tmp.cleanup()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
