"""`--runner=DirectRunner` (and no runner at all) without the network: Beam's FnApiRunner, directly.

Beam 2.77's DirectRunner first tries PrismRunner, a Go binary it downloads from GitHub at run time
(`apache_beam-v2.77.0-prism-linux-amd64.zip`), and falls back to the FnApiRunner when that fails.
Every build paid for the attempt (a worker pool started, the pipeline translated once more and a
download tried), and on a machine that can reach GitHub the build would silently
run on another runner than on one that cannot. Our pipelines use nothing the FnApiRunner lacks (no
streaming, no TestStream, no real-time timers), which is why the fallback always ran it; here it
runs first and alone, with the pipeline options the workers need, as DirectRunner passes them.
`--runner=PrismRunner` still asks for Prism explicitly.

`beam_pipeline` also hands every runner options whose views are made once (`ViewCachingOptions`).
"""

from __future__ import annotations

import multiprocessing
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions
from apache_beam.runners.direct.direct_runner import SwitchingDirectRunner

from lemur_corpus.errors import WorkerLostError, interrupted
from lemur_corpus.pipelines.dofn_specs import remember_dofn_specs
from lemur_corpus.pipelines.state_sampler import shorten_sampling_period

DIRECT_RUNNER_NAMES = frozenset({"direct", "switchingdirect"})
"""The runner names (besides none at all) that mean Beam's DirectRunner, as Beam matches them: any
case, with or without the `Runner` suffix, or as the class's dotted path."""


class OfflineDirectRunner(SwitchingDirectRunner):
    """Beam's DirectRunner minus the Prism attempt: the portable FnApiRunner, in-process,
    multi_threading or multi_processing as `--direct_running_mode` says.

    Given the options up front (`beam_pipeline` does) in multi_processing mode, it starts the
    worker processes at once, so that they import and load what they need while the driver builds
    the graph (`pipelines/sdk_workers.py`)."""

    def __init__(self, options: PipelineOptions | None = None) -> None:
        super().__init__()
        self._workers: Any = None
        direct = options.view_as(DirectOptions) if options is not None else None
        if direct is not None and direct.direct_running_mode == "multi_processing":
            from lemur_corpus.pipelines.sdk_workers import WarmWorkers

            count = direct.direct_num_workers
            # as the FnApiRunner counts them: 0 is one per core, none is one
            self._workers = WarmWorkers(multiprocessing.cpu_count() if count == 0 else count or 1)

    def is_fnapi_compatible(self) -> bool:
        # True: `Pipeline.run` then skips its test round trip through the runner API (a whole
        # translation and re-creation of the graph), as it does for Beam's DirectRunner by name.
        return True

    def run_pipeline(self, pipeline: Any, options: PipelineOptions) -> Any:
        from apache_beam.portability.api import beam_provision_api_pb2
        from apache_beam.runners.portability.fn_api_runner import fn_runner
        from apache_beam.runners.portability.portable_runner import JobServiceHandle

        from lemur_corpus.pipelines.flatten_sinks import SinkingFnApiRunner

        encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
        provision = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
        workers, self._workers = self._workers, None
        if workers is None or options.view_as(DirectOptions).direct_running_mode != "multi_processing":
            if workers is not None:
                workers.close()
            return SinkingFnApiRunner(provision_info=provision).run_pipeline(pipeline, options)
        from lemur_corpus.pipelines.sdk_workers import WarmFnApiRunner

        try:
            return WarmFnApiRunner(workers, provision_info=provision).run_pipeline(pipeline, options)
        except Exception as exc:
            # a worker that died (SIGKILL by the out-of-memory killer) reaches Beam as a data
            # channel "closed prematurely": say which worker, and how it ended, in one line
            lost = workers.lost()
            if lost and not interrupted(exc):
                raise WorkerLostError(lost) from exc
            raise
        finally:
            workers.close()


class ViewCachingOptions(PipelineOptions):
    """Pipeline options whose `view_as(cls)` builds each view once.

    Beam calls `options.view_as(...)` on every `apply`, every inferred output type and every type
    consistency check (over a thousand times for a build's graph), and each call builds an argparse
    parser of that options class and parses every flag again: the largest part of building a
    build's graph, in a profile. A view holds no state of its own (every view of one options object reads and writes
    the same shared dictionary), so the first view of a class serves every later call."""

    def view_as(self, cls: type[Any]) -> Any:
        views = self.__dict__.setdefault("_views", {})
        if cls not in views:
            views[cls] = super().view_as(cls)
        return views[cls]

    def __getstate__(self) -> dict[str, Any]:
        # the views are rebuilt on demand wherever the options are copied or unpickled
        state = dict(super().__getstate__())
        state.pop("_views", None)
        return state


def beam_pipeline(options: PipelineOptions) -> beam.Pipeline:
    """`beam.Pipeline(options=options)` with the same options as `ViewCachingOptions`, on
    `OfflineDirectRunner` where the options name the DirectRunner or no runner; any other runner is
    Beam's to create."""
    remember_dofn_specs()  # Beam's per-ParDo introspection, once per DoFn class (this process and its forks)
    shorten_sampling_period()  # a bundle's end waits out at most 10 ms of Beam's sampler sleep, not 200
    name = options.view_as(StandardOptions).runner
    direct = name is None or (
        isinstance(name, str) and name.rsplit(".", 1)[-1].lower().removesuffix("runner") in DIRECT_RUNNER_NAMES)
    # a view shares the options' flags and values: the same options, another class
    return beam.Pipeline(runner=OfflineDirectRunner(options) if direct else None,
                         options=options.view_as(ViewCachingOptions))
