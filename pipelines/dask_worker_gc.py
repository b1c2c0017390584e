"""The cyclic garbage collector of each Dask worker, tuned for the length of a build's run.

`DaskRunner.run_pipeline` registers `GcThresholds` with the cluster before the build's tasks and
unregisters it when the run ends: each worker (one that joins later too, such as a worker its
nanny restarted) runs with `worker_memory.GC_THRESHOLDS` while the build runs, and with the
thresholds it had before once it is over (a cluster of the user's own is theirs again). Imported
where the runner has a client: distributed's plugin class.
"""

from __future__ import annotations

import gc
import typing as t

from distributed.diagnostics.plugin import WorkerPlugin

from lemur_corpus.pipelines.worker_memory import GC_THRESHOLDS

PLUGIN_NAME = "lemur-corpus-gc-thresholds"


class GcThresholds(WorkerPlugin):
    """Sets the worker process's collector thresholds on setup, restores them on teardown."""

    name = PLUGIN_NAME

    def __init__(self, thresholds: tuple[int, int, int] = GC_THRESHOLDS) -> None:
        self.thresholds = tuple(thresholds)
        self.before: tuple[int, ...] | None = None

    def setup(self, worker: t.Any) -> None:
        self.before = gc.get_threshold()
        gc.set_threshold(*self.thresholds)

    def teardown(self, worker: t.Any) -> None:
        if self.before is not None:
            gc.set_threshold(*self.before)
            self.before = None
