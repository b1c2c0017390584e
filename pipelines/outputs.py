"""Multi-output ParDos that every runner executes the same way.

A DoFn that emits several kinds of elements (documents, drops, statistics) yields
`beam.pvalue.TaggedOutput(tag, value)` for the side kinds, as Beam intends. The usual
`ParDo(fn).with_outputs(...)` is not portable, though: Beam 2.77's DaskRunner translates a
multi-output ParDo into ONE dask bag holding every tag's elements, so a consumer of the `drops`
output also receives the documents (a real build failed in `tally_drop` with "'Document' object has
no attribute 'stage'"). `MultiOutputParDo` runs the same DoFn with a single output of
`(tag, value)` pairs and splits it with one FlatMap per tag, which every runner executes alike.
The cost is one pass per tag over pairs that runners with fusion keep in memory.

    result = docs | "Normalize" >> MultiOutputParDo(NormalizeFn(), DROPS, main="docs")
    result["docs"], result[DROPS]

Only the tags asked for get a FlatMap: a tag nobody reads would be a dangling branch, and a runner
that executes only what the last transform needs (DaskRunner again) would skip it anyway.

On the portable runners (the DirectRunner's FnApiRunner, Dataflow, Flink, Spark:
`NATIVE_MULTI_OUTPUT_RUNNERS`) `MultiOutputParDo` is the native `ParDo(fn).with_outputs(...)`: a
DoFn per tag and a pair per element less (fewer transforms to translate and set up, fewer calls per
document); the
detour stays for every other runner. Elements of a tag nobody asked for are dropped on both
paths. What `finish_bundle` emits (windowed values, tagged or not, as Beam asks of it) reaches its
tag on both: natively, or as windowed pairs (`TagPairsFn`); every runner this project supports
delivers `finish_bundle` outputs (Beam 2.77's own DaskRunner lost them; `pipelines/dask_runner.py`,
which `DaskRunner` means here, does not).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput
from apache_beam.utils.windowed_value import WindowedValue

MAIN = ""
"""The tag under which the DoFn's untagged elements travel."""
MAIN_LABEL = "_untagged"
"""The name of the untagged output of a native multi-output ParDo (its `main=`)."""


class WrappedFn(beam.DoFn):
    """Runs `fn` as it is. Lifecycle calls go through to `fn`, so its per-worker setup stays in
    `setup`, and what its `finish_bundle` emits goes on as it is."""

    def __init__(self, fn: beam.DoFn) -> None:
        self.fn = fn

    def setup(self) -> None:
        self.fn.setup()

    def start_bundle(self) -> None:
        self.fn.start_bundle()

    def process(self, element, *args, **kwargs):  # type: ignore[no-untyped-def]  # Beam rejects `*args: Any`
        # Unannotated on purpose: Beam reads annotations as type hints and rejects `*args: Any`.
        return self.fn.process(element, *args, **kwargs)

    def finish_bundle(self) -> Any:  # windowed values, tagged or not (Beam's rule), or None
        return self.fn.finish_bundle()

    def teardown(self) -> None:
        self.fn.teardown()


class TagPairsFn(WrappedFn):
    """Runs `fn` and yields `(tag, value)` for each of its outputs (MAIN for untagged ones), those of
    its `finish_bundle` too (in their windowed values)."""

    def process(self, element, *args, **kwargs):  # type: ignore[no-untyped-def]  # as WrappedFn.process
        for out in self.fn.process(element, *args, **kwargs) or ():
            if isinstance(out, TaggedOutput):
                yield out.tag, out.value
            else:
                yield MAIN, out

    def finish_bundle(self) -> Iterator[WindowedValue]:
        for out in self.fn.finish_bundle() or ():
            tag, value = (out.tag, out.value) if isinstance(out, TaggedOutput) else (MAIN, out)
            if not isinstance(value, WindowedValue):
                raise TypeError(f"{type(self.fn).__name__}.finish_bundle must emit windowed values, "
                                f"not {type(value).__name__}")
            yield value.with_value((tag, value.value))


class OnlyTagFn(beam.DoFn):
    """One tag's elements of a (tag, value) detour. Selecting them costs nothing: the Dask runner
    runs such a step before the heavier readers of the same partition (`dask_p2p.Chain.ranked`)."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def process(self, pair: tuple[str, Any]) -> Iterator[Any]:
        if pair[0] == self.tag:
            yield pair[1]


NATIVE_MULTI_OUTPUT_RUNNERS = frozenset({
    "lemur_corpus.pipelines.direct_runner.OfflineDirectRunner",  # the FnApiRunner, as DirectRunner
    "apache_beam.runners.portability.fn_api_runner.fn_runner.FnApiRunner",
    "apache_beam.runners.portability.portable_runner.PortableRunner",  # Flink, Spark, Prism
    "apache_beam.runners.dataflow.dataflow_runner.DataflowRunner",
})
"""Runners (or their base classes) that execute a native multi-output ParDo: the portable ones."""


def native_multi_outputs(runner: object) -> bool:
    """Whether `runner` gets native multi-output ParDos: it is, or derives from, one of
    `NATIVE_MULTI_OUTPUT_RUNNERS` (by qualified name, so that no runner module is imported to ask).
    Every other runner takes the (tag, value) detour: the Dask runners, which need it, and Beam's
    BundleBasedDirectRunner (the retrying one), on which a retried build once delivered documents
    into the read stage's `file_errors` output (tests/test_faults.py, one run in several)."""
    return any(f"{cls.__module__}.{cls.__qualname__}" in NATIVE_MULTI_OUTPUT_RUNNERS for cls in type(runner).__mro__)


class MultiOutputParDo(beam.PTransform):
    """`ParDo(fn, *args, **kwargs).with_outputs(*tags, main=main)`, portable; expands to a dict
    {tag: PCollection} holding `main` (when given) and every tag in `tags`."""

    def __init__(self, fn: beam.DoFn, *tags: str, main: str | None = None, **side_inputs: Any) -> None:
        super().__init__()
        if main is not None and main in tags:
            raise ValueError(f"the main output's name {main!r} is also a tag")
        self.fn, self.tags, self.main, self.fn_kwargs = fn, tags, main, side_inputs  # not `side_inputs`: Beam's

    def expand(self, pcoll: beam.PCollection) -> dict[str, beam.PCollection]:
        if native_multi_outputs(pcoll.pipeline.runner):
            native = pcoll | "Run" >> beam.ParDo(WrappedFn(self.fn), **self.fn_kwargs).with_outputs(
                *self.tags, main=MAIN_LABEL)
            outputs = {tag: native[tag] for tag in self.tags}
            if self.main is not None:
                outputs[self.main] = native[MAIN_LABEL]
            return outputs
        pairs = pcoll | "Run" >> beam.ParDo(TagPairsFn(self.fn), **self.fn_kwargs)
        wanted = {tag: tag for tag in self.tags}
        if self.main is not None:
            wanted[self.main] = MAIN
        return {name: pairs | f"Only_{name}" >> beam.ParDo(OnlyTagFn(tag)) for name, tag in wanted.items()}
