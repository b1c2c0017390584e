"""A build's run on Dask, once its graph is submitted: waiting for it, its Beam metrics, and what
is closed or given back when it ends (`DaskRunner.run_pipeline` starts it)."""

from __future__ import annotations

import contextlib
import dataclasses
import typing as t

from apache_beam.runners.runner import PipelineResult, PipelineState

from lemur_corpus.pipelines.dask_metrics import DaskMetrics, gather
from lemur_corpus.pipelines.interrupts import quiet_logger


def released(client: t.Any, cluster: t.Any, tuned_gc: bool) -> None:
    """The run's client closed, and the LocalCluster started for it; on a cluster of the user's
    whose workers' collector was tuned for the run (`tuned_gc`), the collector as it was before."""
    if cluster is None and tuned_gc:
        from lemur_corpus.pipelines.dask_worker_gc import PLUGIN_NAME

        with contextlib.suppress(Exception):  # best effort: the scheduler may be gone already
            client.unregister_worker_plugin(PLUGIN_NAME)
    client.close()
    if cluster is not None:
        cluster.close()


@dataclasses.dataclass
class DaskRunResult(PipelineResult):
    """Waits for every leaf (only element counts come back to the client), gathers the workers'
    Beam metrics (`pipelines/dask_metrics.py`), then closes the client and the LocalCluster it
    started, if any."""

    client: t.Any
    futures: list[t.Any]
    run_id: str
    cluster: t.Any = None
    tuned_gc: bool = False
    """Whether the workers' collector was tuned for the run (`dask_worker_gc`)."""
    gathered: DaskMetrics | None = None

    def __post_init__(self) -> None:
        super().__init__(PipelineState.RUNNING)

    def wait_until_finish(self, duration: float | None = None) -> str:
        from dask import distributed

        try:
            for _ in distributed.as_completed(self.futures, timeout=duration / 1000 if duration else None,
                                              with_results=True):
                pass  # gathering raises a worker's exception here, on the client
            self.gathered = gather(self.client, self.run_id)
            self._state = PipelineState.DONE
        except KeyboardInterrupt:
            self._state = PipelineState.FAILED
            # the LocalCluster's scheduler logs each shuffle it loses as the run is cut short, a
            # traceback apiece: the user asked for it, and the build says "interrupted" itself
            with quiet_logger("distributed"):
                self._close()
            raise
        except BaseException:
            self._state = PipelineState.FAILED
            self._close()
            raise
        self._close()
        return self._state

    def cancel(self) -> str:
        self.client.cancel(self.futures)
        self._close()
        self._state = PipelineState.CANCELLED
        return self._state

    def _close(self) -> None:
        released(self.client, self.cluster, self.tuned_gc)

    def metrics(self) -> DaskMetrics:
        if self.gathered is None:
            raise RuntimeError("the pipeline has not finished: its metrics are gathered when it is done")
        return self.gathered
