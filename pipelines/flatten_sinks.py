"""The DirectRunner's Flattens written straight into the buffer their one consumer fills.

Beam's FnApiRunner materializes every Flatten of several inputs (`translations.sink_flattens`, whose
own TODO reads "actually attempt to sink rather than always materialize"): each input's stage writes
to the Flatten's buffer, and a stage of its own reads that buffer back to hand it on. Where the
Flatten's only consumer is a GroupByKey (every `CoGroupByKey` is tagged inputs, a Flatten and a
GroupByKey) or another Flatten, that stage is a relay: it decodes every element, encodes it again
into the grouping buffer, and costs a stage's fixed price on the workers (a bundle processor, a
descriptor, a state sampler, per worker). `corpus dedup` of 5,000 documents ran 9 such stages of its
70, among them the join of the documents' shingle payloads with their candidate pairs.

`sink_flattens_into_consumers` is one more optimization phase, after Beam's `sink_flattens`: a
Flatten whose read is consumed only by the write of a grouping or of another Flatten has its inputs
write directly into that buffer, and its read and the consumer's write leave the graph. The coders
already agree (Beam's `fix_flatten_coders` gave every input the Flatten's output coder, which is the
consumer's input), a grouping buffer takes its coders from its GroupByKey, and the runner already
handles a buffer with several writers (that is what a Flatten's buffer is). The grouped values, and
so the build's bytes, are the same: every stage sorts what it groups, and a GroupByKey's input never
was ordered across its writers.
"""

from __future__ import annotations

import collections
import copy
from collections.abc import Iterable, Iterator
from typing import Any

from apache_beam.portability import common_urns
from apache_beam.runners.portability.fn_api_runner import fn_runner, translations
from apache_beam.runners.worker import bundle_processor

_SUNK = "_lemur_sunk_grouping_inputs"
"""Attribute of the phases' `TransformContext`: the PCollections that no data channel carries any
more but whose grouping buffer still looks its coder up by them."""


def _only_transform(stage: translations.Stage) -> Any:
    return stage.transforms[0] if len(stage.transforms) == 1 else None


def _is_write(transform: Any, kinds: tuple[str, ...]) -> bool:
    return (transform is not None and transform.spec.urn == bundle_processor.DATA_OUTPUT_URN
            and translations.split_buffer_id(transform.spec.payload)[0] in kinds)


def _relays(stages: list[translations.Stage]) -> Iterator[tuple[translations.Stage, translations.Stage, str]]:
    """(a Flatten's read, its one consumer: a grouping's or a Flatten's write, the PCollection
    between them)."""
    consumers: dict[str, list[translations.Stage]] = collections.defaultdict(list)
    for stage in stages:
        for transform in stage.transforms:
            for pcoll in transform.inputs.values():  # side inputs are inputs too
                consumers[pcoll].append(stage)
    for stage in stages:
        read = _only_transform(stage)
        if (read is None or read.spec.urn != bundle_processor.DATA_INPUT_URN
                or translations.split_buffer_id(read.spec.payload)[0] != "materialize" or len(read.outputs) != 1):
            continue
        (pcoll,) = read.outputs.values()
        readers = consumers.get(pcoll, [])
        if len(readers) == 1 and _is_write(_only_transform(readers[0]), ("group", "materialize")):
            yield stage, readers[0], pcoll


def sink_flattens_into_consumers(stages: Iterable[translations.Stage],
                                 context: translations.TransformContext) -> list[translations.Stage]:
    """The optimization phase (see the module): run after `translations.sink_flattens`, before fusion."""
    stages = list(stages)
    sunk: list[str] = getattr(context, _SUNK, [])
    setattr(context, _SUNK, sunk)
    while True:
        writers: dict[bytes, list[translations.Stage]] = collections.defaultdict(list)
        for stage in stages:
            transform = _only_transform(stage)
            if _is_write(transform, ("materialize",)):
                writers[transform.spec.payload].append(stage)
        found = next(((read, consumer, pcoll) for read, consumer, pcoll in _relays(stages)
                      if writers.get(_only_transform(read).spec.payload)), None)
        if found is None:
            return stages
        read, consumer, pcoll = found
        writes = writers[_only_transform(read).spec.payload]
        target = _only_transform(consumer).spec.payload
        for write in writes:
            _only_transform(write).spec.payload = target
            write.must_follow = translations.union(write.must_follow, consumer.must_follow)
        if translations.split_buffer_id(target)[0] == "group":
            sunk.append(pcoll)
        gone = {read, consumer}
        instead = frozenset(writes)
        stages = [stage for stage in stages if stage not in gone]
        for stage in stages:
            if stage.must_follow & gone:
                stage.must_follow = (stage.must_follow - gone) | instead


def register_sunk_grouping_inputs(stages: Iterable[translations.Stage],
                                  context: translations.TransformContext) -> Iterable[translations.Stage]:
    """Last phase: a grouping buffer finds its coders by its GroupByKey's input PCollection, whose
    data channel coder Beam records only for a PCollection some stage writes: record it for those
    whose write left the graph."""
    for pcoll in getattr(context, _SUNK, []):
        context.add_data_channel_coder(pcoll, False)
    return stages


def optimize_phases() -> list[Any]:
    """Beam's FnApiRunner phases (`FnApiRunner.create_stages`) with the Flatten sinking added."""
    return [
        translations.annotate_downstream_side_inputs,
        translations.fix_side_input_pcoll_coders,
        translations.pack_combiners,
        translations.lift_combiners,
        translations.expand_sdf,
        translations.expand_gbk,
        translations.sink_flattens,
        sink_flattens_into_consumers,
        translations.greedily_fuse,
        translations.read_to_impulse,
        translations.impulse_to_input,
        translations.sort_stages,
        translations.add_impulse_to_dangling_transforms,
        translations.setup_timer_mapping,
        translations.populate_data_channel_coders,
        register_sunk_grouping_inputs,
    ]


class SinkingFnApiRunner(fn_runner.FnApiRunner):
    """Beam's FnApiRunner with `optimize_phases` (the DirectRunner's in-process and multi-threaded
    modes; `WarmFnApiRunner` for multi_processing)."""

    def create_stages(self, pipeline_proto: Any) -> tuple[translations.TransformContext, list[translations.Stage]]:
        return translations.create_and_optimize_stages(
            copy.deepcopy(pipeline_proto),
            phases=optimize_phases(),
            known_runner_urns=frozenset([common_urns.primitives.FLATTEN.urn, common_urns.primitives.GROUP_BY_KEY.urn]),
            use_state_iterables=self._use_state_iterables,
            is_drain=self._is_drain)
