"""Combiner lifting for the DaskRunner (`pipelines/dask_runner.py`, its module docstring, 5).

Beam's DaskRunner runs a `CombinePerKey` as a `GroupByKey` of every input element. Here each Dask
partition first combines its own elements (`PartialCombineFn`), and only one accumulator per key and
partition is grouped and merged (`MergeAccumulatorsFn`), as Beam's portable runners lift combiners.
The grouping of a global combine (`CombineGlobally`: one key) has its own label, which the runner
gathers by a tree reduction instead of a shuffle.
"""

from __future__ import annotations

import typing as t

import apache_beam
from apache_beam.pipeline import AppliedPTransform, PTransformOverride
from apache_beam.transforms.window import GlobalWindow, GlobalWindows
from apache_beam.utils.windowed_value import WindowedValue

GLOBAL_WINDOWS = (GlobalWindow(),)
"""The one window tuple every element of the build has (its elements are in the global window)."""
ACCUMULATORS = "GroupAccumulators"
"""The label of a lifted combiner's grouping (`LiftedCombinePerKey`): one accumulator per key and
partition, small whatever the corpus, so it takes the tasks shuffle (no P2P start-up)."""
GLOBAL_ACCUMULATORS = "GatherAccumulators"
"""The label of a lifted global combine's grouping (`CombineGlobally`: one key): its partitions'
accumulators are gathered by a tree reduction into one partition (`gathered_groups`)."""


class PartialCombineFn(apache_beam.DoFn):
    """(key, value) -> one (key, accumulator) per key of the bundle (a Dask partition), emitted
    when the bundle ends. Keys are the pipeline's own (hashable) values."""

    def __init__(self, combine_fn: apache_beam.CombineFn) -> None:
        self.combine_fn = combine_fn

    def setup(self) -> None:
        self.combine_fn.setup()

    def start_bundle(self) -> None:
        self.accumulators: dict[t.Any, t.Any] = {}

    def process(self, element: tuple[t.Any, t.Any]) -> None:
        key, value = element
        accumulators, fn = self.accumulators, self.combine_fn
        accumulators[key] = fn.add_input(
            accumulators[key] if key in accumulators else fn.create_accumulator(), value)

    def finish_bundle(self) -> t.Iterator[WindowedValue]:
        for key, accumulator in self.accumulators.items():
            yield WindowedValue((key, self.combine_fn.compact(accumulator)), 0, GLOBAL_WINDOWS)
        self.accumulators = {}

    def teardown(self) -> None:
        self.combine_fn.teardown()


class MergeAccumulatorsFn(apache_beam.DoFn):
    """(key, the partitions' accumulators) -> (key, combined output)."""

    def __init__(self, combine_fn: apache_beam.CombineFn) -> None:
        self.combine_fn = combine_fn

    def setup(self) -> None:
        self.combine_fn.setup()

    def process(self, element: tuple[t.Any, t.Iterable[t.Any]]) -> t.Iterator[tuple[t.Any, t.Any]]:
        key, accumulators = element
        fn = self.combine_fn
        yield key, fn.extract_output(fn.merge_accumulators(accumulators))

    def teardown(self) -> None:
        self.combine_fn.teardown()


class LiftedCombinePerKey(apache_beam.PTransform):
    """`CombinePerKey(fn)` as partial combines, a grouping of accumulators, and their merge."""

    def __init__(self, combine_fn: apache_beam.CombineFn, one_key: bool = False) -> None:
        super().__init__()
        self.combine_fn, self.one_key = combine_fn, one_key

    def expand(self, pcoll: apache_beam.PCollection) -> apache_beam.PCollection:
        return (
            pcoll
            | "PartialCombine" >> apache_beam.ParDo(PartialCombineFn(self.combine_fn))
            | (GLOBAL_ACCUMULATORS if self.one_key else ACCUMULATORS) >> apache_beam.GroupByKey()
            | "MergeAccumulators" >> apache_beam.ParDo(MergeAccumulatorsFn(self.combine_fn))
        )


class LiftCombiners(PTransformOverride):
    """Replaces every `CombinePerKey` without extra arguments in the global window (the build's
    kind) by `LiftedCombinePerKey`; any other is left as Beam expands it."""

    def matches(self, applied_ptransform: AppliedPTransform) -> bool:
        transform = applied_ptransform.transform
        if type(transform) is not apache_beam.CombinePerKey or transform.args or transform.kwargs:
            return False
        main = next(iter(applied_ptransform.main_inputs.values()), None)
        return isinstance(getattr(getattr(main, "windowing", None), "windowfn", None), GlobalWindows)

    def get_replacement_transform_for_applied_ptransform(
            self, applied_ptransform: AppliedPTransform) -> apache_beam.PTransform:
        return LiftedCombinePerKey(t.cast(apache_beam.CombinePerKey, applied_ptransform.transform).fn,
                                   one_key=is_global_combine(applied_ptransform))


def is_global_combine(applied_ptransform: AppliedPTransform) -> bool:
    """Whether a `CombinePerKey` is the one inside a `CombineGlobally` (all its keys are None). Once
    Beam has sent the pipeline through its runner API (as `Pipeline.run` does), the parent is a plain
    `PTransform`; what remains is CombineGlobally's expansion: its input comes from `KeyWithVoid`.
    Either way only speed depends on it: a gathered grouping is still grouped by key."""
    parent = applied_ptransform.parent
    if isinstance(getattr(parent, "transform", None), apache_beam.CombineGlobally):
        return True
    producers = [getattr(value, "producer", None) for value in applied_ptransform.main_inputs.values()]
    return parent is not None and len(producers) == 1 and producers[0] is not None and (
        producers[0].full_label == f"{parent.full_label}/KeyWithVoid")
