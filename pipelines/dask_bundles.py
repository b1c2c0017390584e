"""The DaskRunner's tasks that run Beam DoFns: one partition through a chain of fused ParDos.

Beam's DaskRunner makes a task per partition per ParDo, and each task's output list waits in the
worker's memory (and moves between workers) until the next ParDo's task has read it. Dask's graph
optimizer would fuse such linear chains, but a graph with a P2P shuffle must run unoptimized (the
shuffle's barrier tasks must stay as they are), and a build's is: its groupings are P2P above 32
partitions. So the runner fuses them itself, at translation time: a ParDo whose input is a fused
chain that nothing else reads (`consumer_counts`) extends that chain, and the chain runs as one task
per partition (`run_steps`), each ParDo a bundle of its own (setup once per worker, start_bundle,
every element, finish_bundle, metrics under its own label), each element taken through every
ParDo before the next is read (`stream_steps`), so no intermediate output is held whole.
`benchmarks/dask_graph.py` counts the tasks this saves. After a chain's task the worker hands the
heap memory it freed back to the system (`TRIM_HEAP`).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import typing as t

import apache_beam
from apache_beam import pvalue
from apache_beam.pipeline import AppliedPTransform, PipelineVisitor
from apache_beam.pvalue import TaggedOutput
from apache_beam.runners.common import DoFnContext, DoFnInvoker, DoFnSignature, Receiver, _OutputHandler
from apache_beam.runners.dask.transform_evaluator import get_windowed_value
from apache_beam.runners.worker import statesampler
from apache_beam.transforms.sideinputs import SideInputMap
from apache_beam.transforms.window import GlobalWindows, TimestampedValue
from apache_beam.utils.windowed_value import WindowedValue

from lemur_corpus.pipelines.dask_combine import GLOBAL_WINDOWS
from lemur_corpus.pipelines.dask_metrics import bundle_tracker
from lemur_corpus.pipelines.dask_sizeof import register as register_sizeof
from lemur_corpus.pipelines.worker_memory import trim_heap

log = logging.getLogger("corpus")

register_sizeof()  # a worker weighs what these tasks return (pipelines/dask_sizeof.py)


@dataclasses.dataclass(frozen=True)
class SideInputSpec:
    """What a task needs to rebuild one side input's `SideInputMap` from its materialized values."""

    view_class: type[pvalue.AsSideInput]
    view_options: dict[str, t.Any]
    window_fn: t.Any


def materialize(window_fn: t.Any, *partitions: list[t.Any]) -> list[t.Any]:
    """A side input's elements, all partitions, as windowed values (computed once, shared)."""
    return [get_windowed_value(item, window_fn) for part in partitions for item in part]


_WORKER_FNS: dict[tuple[str, str, int], tuple[apache_beam.DoFn, DoFnSignature]] = {}
"""This worker's set-up DoFns of the current run, by (run, transform, thread): `setup` runs once per
worker and thread, as Beam promises, instead of once per partition (loading the tokenizer 18 times
was a third of a small build's time)."""


def _worker_fn(fn: apache_beam.DoFn, run: str, label: str) -> tuple[apache_beam.DoFn, DoFnSignature, bool]:
    """(the DoFn to use, its signature, whether it still needs `setup`). The signature is read once
    per worker too (Beam inspects every method of the DoFn). A new run tears down the previous run's."""
    for key in [k for k in _WORKER_FNS if k[0] != run]:
        _teardown(_WORKER_FNS.pop(key)[0])
    key = (run, label, threading.get_ident())
    if key in _WORKER_FNS:
        return (*_WORKER_FNS[key], False)
    signature = DoFnSignature(fn)
    _WORKER_FNS[key] = (fn, signature)
    return fn, signature, True


def _windowed(item: t.Any, window_fn: t.Any) -> WindowedValue:
    """`get_windowed_value`, with the common case (a plain value in the global window) taking one
    shared window instead of making a `GlobalWindow` per element."""
    if isinstance(item, (TaggedOutput, WindowedValue, TimestampedValue)) or not isinstance(
            window_fn, (GlobalWindows, type(None))):
        return get_windowed_value(item, window_fn)
    return WindowedValue(item, 0, GLOBAL_WINDOWS)


@dataclasses.dataclass(frozen=True)
class BundleStep:
    """One ParDo of a fused chain: its DoFn, label (the transform's full label), main input's
    window function, extra arguments and side inputs (their values come with the task)."""

    fn: apache_beam.DoFn
    label: str
    window_fn: t.Any
    args: list[t.Any]
    kwargs: dict[str, t.Any]
    specs: list[SideInputSpec]

    def open(self, run: str, side_values: t.Sequence[list[t.Any]], sink: t.Callable[[t.Any], None]) -> OpenStep:
        """The DoFn ready for a partition, its outputs handed to `sink` as they are made."""
        return OpenStep(self, run, side_values, sink)


class _Forward(Receiver):
    """A step's outputs of one tag, each handed on as it is made: the value of a main output, the
    windowed value of a tagged one (what Beam's `TaggingReceiver` kept, unwrapped once)."""

    def __init__(self, tag: str | None, sink: t.Callable[[t.Any], None]) -> None:
        self.tag, self.sink = tag, sink

    def receive(self, windowed_value: WindowedValue) -> None:
        self.sink(windowed_value if self.tag else windowed_value.value)


class _Forwarding(dict[str | None, _Forward]):
    """A step's receivers by tag, each made when the step first emits on it (as Beam's `OneReceiver`)."""

    def __init__(self, sink: t.Callable[[t.Any], None]) -> None:
        super().__init__()
        self.sink = sink

    def __missing__(self, tag: str | None) -> _Forward:
        forward = self[tag] = _Forward(tag, self.sink)
        return forward


class OpenStep:
    """One ParDo of a chain, open on one partition: `start` (setup once per worker, start_bundle),
    `push` each element, `finish` (finish_bundle); every output goes to the sink at once, so the
    next step reads it before this one reads its next element. Each call runs with the step's
    metrics tracker (`dask_metrics.bundle_tracker`). Receivers are made here, so no state crosses
    partitions."""

    def __init__(self, step: BundleStep, run: str, side_values: t.Sequence[list[t.Any]],
                 sink: t.Callable[[t.Any], None]) -> None:
        self.fn, signature, self.needs_setup = _worker_fn(step.fn, run, step.label)
        self.window_fn = step.window_fn
        receivers = _Forwarding(sink)
        handler = _OutputHandler(
            window_fn=step.window_fn, main_receivers=receivers[None], tagged_receivers=receivers,
            per_element_output_counter=None, output_batch_converter=None, process_yields_batches=False,
            process_batch_yields_elements=False)
        # Beam annotates `view_class` as an AsSideInput instance; its own runners pass the class, type(side).
        side_inputs = [SideInputMap(s.view_class, s.view_options, values)  # type: ignore[arg-type]  # a class, see above
                       for s, values in zip(step.specs, side_values, strict=True)]
        self.invoker = DoFnInvoker.create_invoker(
            signature, handler, context=DoFnContext(step.label, state=None), side_inputs=side_inputs,
            input_args=step.args, input_kwargs=step.kwargs, user_state_context=None,
            bundle_finalizer_param=apache_beam.DoFn.BundleFinalizerParam())
        self.tracker = bundle_tracker(run, step.label)

    def start(self) -> None:
        previous = _set_tracker(self.tracker)
        try:
            if self.needs_setup:
                self.invoker.invoke_setup()
            self.invoker.invoke_start_bundle()
        finally:
            _set_tracker(previous)

    def push(self, item: t.Any) -> None:
        previous = _set_tracker(self.tracker)
        try:
            self.invoker.invoke_process(_windowed(item, self.window_fn))
        finally:
            _set_tracker(previous)

    def finish(self) -> None:
        previous = _set_tracker(self.tracker)
        try:
            self.invoker.invoke_finish_bundle()
        finally:
            _set_tracker(previous)


def _set_tracker(tracker: t.Any) -> t.Any:
    """Makes `tracker` this thread's current one; returns the one it replaces."""
    previous = statesampler.get_current_tracker()
    statesampler.set_current_tracker(tracker)
    return previous


TRIM_HEAP = True
"""Whether a worker hands the heap memory a chain's task freed back to the system after the task
(`worker_memory.trim_heap`: a chain frees the lists of every step but the last, and glibc keeps
most freed memory inside its heaps, where Dask counts it as unmanaged); read when the driver makes
the chain, which carries it to the workers."""

STREAM_CHAINS = True
"""Whether a chain takes each element through all its ParDos before it reads the next
(`stream_steps`) instead of running each ParDo on the whole partition in turn, every step's output
held whole until the next step has read it (`benchmarks/dask_runner_speed.py --baseline pieces`);
read when the driver makes the chain, as `TRIM_HEAP`."""


class FusedSteps:
    """A chain of ParDos run as one task per partition. Opaque to Dask on purpose: its token (what
    names the task) is the run and the transforms' labels, unique in a pipeline, instead of Dask
    pickling every DoFn of the chain again each time the chain grows by one."""

    def __init__(self, run: str, steps: tuple[BundleStep, ...], trim: bool | None = None,
                 stream: bool | None = None) -> None:
        self.run, self.steps = run, steps
        self.trim = TRIM_HEAP if trim is None else trim
        self.stream = STREAM_CHAINS if stream is None else stream

    def then(self, step: BundleStep) -> FusedSteps:
        return FusedSteps(self.run, (*self.steps, step), self.trim, self.stream)

    def __dask_tokenize__(self) -> tuple[str, ...]:
        return (self.run, *(step.label for step in self.steps))


def stream_steps(items: t.Iterable[t.Any], fused: FusedSteps, *side_values: list[t.Any]) -> t.Iterator[t.Any]:
    """One partition through every ParDo of the chain, the last one's outputs yielded as they are
    made: each element goes through the whole chain before the next is read (as Beam's own workers
    run a fused stage), so no step's output is ever held whole. Each step's side inputs are the
    next `len(step.specs)` of `side_values`. The outputs, and their order, are those of the steps
    run one after the other on the whole partition (each step sees its input in the same order)."""
    if not fused.stream and len(fused.steps) > 1:  # the baseline: each step on the whole partition in turn
        at = 0
        for step in fused.steps:
            one = FusedSteps(fused.run, (step,), trim=False, stream=True)
            items = list(stream_steps(items, one, *side_values[at:at + len(step.specs)]))
            at += len(step.specs)
        if fused.trim:
            trim_heap()
        yield from items
        return
    made: list[t.Any] = []
    opened: list[OpenStep] = []
    sink: t.Callable[[t.Any], None] = made.append
    at = len(side_values)
    for step in reversed(fused.steps):  # the last step first: each step's sink is the next one's push
        at -= len(step.specs)
        opened.insert(0, step.open(fused.run, side_values[at:at + len(step.specs)], sink))
        sink = opened[0].push
    try:
        for step_open in opened:
            step_open.start()
        push = opened[0].push
        for item in items:
            push(item)
            if made:
                yield from made
                made.clear()
        for step_open in opened:  # a step's finish_bundle outputs reach the next step before its own
            step_open.finish()
            yield from made
            made.clear()
    except BaseException:  # as Beam does: the instances of a failed bundle are not used again (a retry sets up anew)
        for step_open in opened:
            _discard(step_open.fn)
        raise
    if fused.trim:
        trim_heap()


def run_steps(items: t.Iterable[t.Any], fused: FusedSteps, *side_values: list[t.Any]) -> list[t.Any]:
    """One partition through every ParDo of the chain (`stream_steps`): the last step's outputs."""
    return list(stream_steps(items, fused, *side_values))


def _discard(fn: apache_beam.DoFn) -> None:
    for key, (cached, _) in list(_WORKER_FNS.items()):
        if cached is fn:
            del _WORKER_FNS[key]
    _teardown(fn)


def _teardown(fn: apache_beam.DoFn) -> None:
    try:
        fn.teardown()
    except Exception:  # best effort, as in Beam: the task's own outcome is what matters
        log.exception("teardown of %s failed", type(fn).__name__)


@dataclasses.dataclass
class ConsumerCounts(PipelineVisitor):
    """How many transforms read each transform's output, as main or side input: a chain is extended
    only through an output exactly one transform reads (any other reader would need the
    intermediate result as a task of its own)."""

    counts: collections.Counter[AppliedPTransform] = dataclasses.field(default_factory=collections.Counter)

    def visit_transform(self, node: AppliedPTransform) -> None:
        for value in node.inputs:
            if not isinstance(value, pvalue.PBegin):
                self.counts[value.producer] += 1
        for side in node.side_inputs:
            self.counts[side.pvalue.producer] += 1


def consumer_counts(pipeline: apache_beam.Pipeline) -> collections.Counter[AppliedPTransform]:
    visitor = ConsumerCounts()
    pipeline.visit(visitor)
    return visitor.counts
