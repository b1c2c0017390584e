"""Beam's state-and-timer introspection of DoFns, answered once per class (pipelines/dofn_specs.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import pytest
from apache_beam.coders import VarIntCoder
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import userstate
from apache_beam.transforms.core import CallableWrapperDoFn

from lemur_corpus.pipelines import dofn_specs
from lemur_corpus.pipelines.direct_runner import beam_pipeline

SEEN = userstate.BagStateSpec("seen", VarIntCoder())
SEEN_PARAM = beam.DoFn.StateParam(SEEN)
"""How a DoFn method asks for that state: a default argument Beam reads."""


class CountPerKeyFn(beam.DoFn):
    """Stateful: each element's position among its key's elements so far."""

    def process(self, element: tuple[str, int], seen: Any = SEEN_PARAM) -> Iterator[tuple[str, int]]:
        key, value = element
        earlier = len(list(seen.read()))
        seen.add(value)
        yield key, earlier


class PlainFn(beam.DoFn):
    def process(self, element: int) -> Iterator[int]:
        yield element


class Holder:
    def method(self, element: int, seen: Any = SEEN_PARAM) -> int:
        return element


BEAM_GET_DOFN_SPECS = dofn_specs._BEAM_GET_DOFN_SPECS
"""Beam's own function, as `dofn_specs` found it."""


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Beam's own answers given, one entry per call."""
    calls: list[Any] = []

    def beams(dofn: Any) -> Any:
        calls.append(dofn)
        return BEAM_GET_DOFN_SPECS(dofn)

    monkeypatch.setattr(dofn_specs, "_BEAM_GET_DOFN_SPECS", beams)
    monkeypatch.setattr(dofn_specs, "_BY_CLASS", type(dofn_specs._BY_CLASS)())
    return calls


def test_the_answer_is_beams_and_is_asked_once_per_class(counted: list[Any]) -> None:
    for fn in (CountPerKeyFn(), CountPerKeyFn(), PlainFn(), PlainFn()):
        assert dofn_specs.get_dofn_specs(fn) == BEAM_GET_DOFN_SPECS(fn)
    assert [type(fn) for fn in counted] == [CountPerKeyFn, PlainFn]
    states, _ = dofn_specs.get_dofn_specs(CountPerKeyFn())
    states.clear()  # a caller's copy: the next caller still gets the state
    assert dofn_specs.get_dofn_specs(CountPerKeyFn())[0] == {SEEN}


def test_an_instance_that_decides_its_answer_is_asked_every_time(counted: list[Any]) -> None:
    bound = CallableWrapperDoFn(Holder().method)  # beam.Map(obj.method): Beam reads the method's defaults
    assert dofn_specs.class_key(bound) is None
    assert dofn_specs.get_dofn_specs(bound) == BEAM_GET_DOFN_SPECS(bound) == ({SEEN}, set())
    assert dofn_specs.get_dofn_specs(bound)[0] == {SEEN} and len(counted) == 2
    plain = CallableWrapperDoFn(lambda element: element)  # beam.Map(f): its own `process`, which Beam skips
    assert dofn_specs.class_key(plain) == frozenset({"process"})
    assert dofn_specs.get_dofn_specs(plain) == BEAM_GET_DOFN_SPECS(plain) == (set(), set())
    assert dofn_specs.class_key(PlainFn()) == frozenset()  # the class's methods: another answer, kept apart


def test_a_stateful_dofn_still_runs_with_its_state() -> None:
    with beam_pipeline(PipelineOptions()) as p:  # installs the per-class answers
        assert userstate.get_dofn_specs is dofn_specs.get_dofn_specs
        out = (p | beam.Create([("a", 1), ("a", 2), ("b", 3), ("a", 4)])
               | beam.ParDo(CountPerKeyFn()) | beam.Map(lambda kv: kv[1]) | beam.combiners.ToList()
               | beam.Map(sorted))
        assert_that(out, equal_to([[0, 0, 1, 2]]))
