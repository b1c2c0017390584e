"""`--runner=DirectRunner` (and no runner at all) without the network: Beam's FnApiRunner, directly.

Beam 2.77's DirectRunner first tries PrismRunner, a Go binary it downloads from GitHub at run time
(`apache_beam-v2.77.0-prism-linux-amd64.zip`), and falls back to the FnApiRunner when that fails.
Every build paid for the attempt (a worker pool started, the pipeline translated once more and a
download tried), and on a machine that can reach GitHub the build would silently
run on another runner than on one that cannot. Our pipelines use nothing the FnApiRunner lacks (no
streaming, no TestStream, no real-time timers), which is why the fallback always ran it; here it
runs first and alone, with the pipeline options the workers need, as DirectRunner passes them.
`--runner=PrismRunner` still asks for Prism explicitly.
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.direct.direct_runner import SwitchingDirectRunner

DIRECT_RUNNER_NAMES = frozenset({"direct", "switchingdirect"})
"""The runner names (besides none at all) that mean Beam's DirectRunner, as Beam matches them: any
case, with or without the `Runner` suffix, or as the class's dotted path."""


class OfflineDirectRunner(SwitchingDirectRunner):
    """Beam's DirectRunner minus the Prism attempt: the portable FnApiRunner, in-process,
    multi_threading or multi_processing as `--direct_running_mode` says."""

    def is_fnapi_compatible(self) -> bool:
        # True: `Pipeline.run` then skips its test round trip through the runner API (a whole
        # translation and re-creation of the graph), as it does for Beam's DirectRunner by name.
        return True

    def run_pipeline(self, pipeline: Any, options: PipelineOptions) -> Any:
        from apache_beam.portability.api import beam_provision_api_pb2
        from apache_beam.runners.portability.fn_api_runner import fn_runner
        from apache_beam.runners.portability.portable_runner import JobServiceHandle

        encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
        provision = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
        return fn_runner.FnApiRunner(provision_info=provision).run_pipeline(pipeline, options)


def beam_pipeline(options: PipelineOptions) -> beam.Pipeline:
    """`beam.Pipeline(options=options)`, on `OfflineDirectRunner` where the options name the
    DirectRunner or no runner; any other runner is Beam's to create."""
    name = options.view_as(StandardOptions).runner
    direct = name is None or (
        isinstance(name, str) and name.rsplit(".", 1)[-1].lower().removesuffix("runner") in DIRECT_RUNNER_NAMES)
    return beam.Pipeline(runner=OfflineDirectRunner() if direct else None, options=options)
