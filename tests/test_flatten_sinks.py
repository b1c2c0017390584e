"""The DirectRunner's Flattens written straight into their consumer's buffer (pipelines/flatten_sinks.py):
fewer stages, the same results as Beam's own FnApiRunner."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import apache_beam as beam
import pytest
from apache_beam.runners.portability.fn_api_runner import fn_runner, translations
from apache_beam.runners.worker import bundle_processor
from apache_beam.testing.util import assert_that, equal_to

from lemur_corpus.pipelines.flatten_sinks import SinkingFnApiRunner


def _stages(runner: fn_runner.FnApiRunner, build: Callable[[beam.Pipeline], Any]) -> list[translations.Stage]:
    p = beam.Pipeline()
    build(p)
    _, stages = runner.create_stages(p.to_runner_api())
    return stages


def _relays(stages: list[translations.Stage]) -> list[str]:
    """Stages that only read a Flatten's buffer and write it to another buffer."""
    def relay(stage: translations.Stage) -> bool:
        urns = [t.spec.urn for t in stage.transforms]
        reads = [t for t in stage.transforms if t.spec.urn == bundle_processor.DATA_INPUT_URN]
        return (sorted(urns) == sorted([bundle_processor.DATA_INPUT_URN, bundle_processor.DATA_OUTPUT_URN])
                and translations.split_buffer_id(reads[0].spec.payload)[0] == "materialize")
    return [stage.name for stage in stages if relay(stage)]


def _run(runner: fn_runner.FnApiRunner, build: Callable[[beam.Pipeline], beam.PCollection], expected: list) -> None:
    with beam.Pipeline(runner=runner) as p:
        assert_that(build(p), equal_to(expected))


def _joined(p: beam.Pipeline) -> beam.PCollection:
    """A CoGroupByKey of three inputs made in three stages (one of another coder), sorted per key."""
    left = (p | "Left" >> beam.Create([("a", 1), ("b", 2), ("a", 3)])
            | "Double" >> beam.Map(lambda kv: (kv[0], kv[1] * 2)))
    right = p | "Right" >> beam.Create([("a", "x"), ("c", "y")])
    third = (p | "Third" >> beam.Create([("b", 1.5)]) | "Group3" >> beam.GroupByKey()
             | "Firsts" >> beam.MapTuple(lambda k, vs: (k, sorted(vs)[0])))
    return ({"left": left, "right": right, "third": third} | "Join" >> beam.CoGroupByKey()
            | "Sorted" >> beam.MapTuple(lambda k, g: (k, sorted(g["left"]), sorted(g["right"]), sorted(g["third"]))))


JOINED = [("a", [2, 6], ["x"], []), ("b", [4], [], [1.5]), ("c", [], ["y"], [])]


def _chained(p: beam.Pipeline) -> beam.PCollection:
    """A Flatten of a Flatten (of the same coder), then a step and a GroupByKey."""
    one = p | "One" >> beam.Create([("k", 1), ("j", 2)]) | "Id1" >> beam.Map(lambda x: x)
    two = p | "Two" >> beam.Create([("k", 3)]) | "Id2" >> beam.Map(lambda x: x)
    three = p | "Three" >> beam.Create([("j", 4)]) | "Id3" >> beam.Map(lambda x: x)
    inner = (one, two) | "Inner" >> beam.Flatten()
    return ((inner, three) | "Outer" >> beam.Flatten() | "Key" >> beam.MapTuple(lambda k, v: (k.upper(), v))
            | "Group" >> beam.GroupByKey()
            | "Sorted" >> beam.MapTuple(lambda k, vs: (k, sorted(vs))))


CHAINED = [("J", [2, 4]), ("K", [1, 3])]


def _shared(p: beam.Pipeline) -> beam.PCollection:
    """A Flatten read by a GroupByKey and by a Map: its buffer stays (two consumers)."""
    a = p | "A" >> beam.Create([("k", 1)]) | "IdA" >> beam.Map(lambda x: x)
    b = p | "B" >> beam.Create([("k", 2)]) | "IdB" >> beam.Map(lambda x: x)
    both = (a, b) | "Both" >> beam.Flatten()
    grouped = both | "Group" >> beam.GroupByKey() | "Sorted" >> beam.MapTuple(lambda k, vs: ("grouped", sorted(vs)))
    each = both | "Each" >> beam.MapTuple(lambda k, v: ("each", [v]))
    return (grouped, each) | "All" >> beam.Flatten()


SHARED = [("grouped", [1, 2]), ("each", [1]), ("each", [2])]


@pytest.mark.parametrize(("build", "expected"), [(_joined, JOINED), (_chained, CHAINED), (_shared, SHARED)],
                         ids=["cogroupbykey", "flatten-of-flatten", "two-consumers"])
def test_sunk_flattens_give_beams_results(build: Callable[[beam.Pipeline], beam.PCollection], expected: list) -> None:
    _run(fn_runner.FnApiRunner(), build, expected)
    _run(SinkingFnApiRunner(), build, expected)


def test_a_cogroupbykey_and_a_chain_of_flattens_lose_their_relay_stages() -> None:
    for build, sunk in ((_joined, 1), (_chained, 1)):
        beams = _stages(fn_runner.FnApiRunner(), build)
        ours = _stages(SinkingFnApiRunner(), build)
        assert len(_relays(beams)) == sunk, [s.name for s in beams]
        assert _relays(ours) == []
        assert len(ours) == len(beams) - sunk


def test_a_flatten_with_a_second_consumer_keeps_its_buffer() -> None:
    beams = _stages(fn_runner.FnApiRunner(), _shared)
    ours = _stages(SinkingFnApiRunner(), _shared)
    assert sorted(s.name for s in ours) == sorted(s.name for s in beams)  # stages of one rank: any order


def test_the_phases_are_beams_own_with_the_sinking_added() -> None:
    """`optimize_phases` copies the phase list inlined in Beam's `FnApiRunner.create_stages`: a Beam
    upgrade that changes it must change ours too."""
    import inspect
    import re

    from lemur_corpus.pipelines import flatten_sinks

    source = inspect.getsource(fn_runner.FnApiRunner.create_stages)
    beams = re.findall(r"translations\.(\w+)", source[source.index("phases=["):].split("]", 1)[0])
    ours = [phase.__name__ for phase in flatten_sinks.optimize_phases()
            if phase not in (flatten_sinks.sink_flattens_into_consumers, flatten_sinks.register_sunk_grouping_inputs)]
    assert ours == beams
