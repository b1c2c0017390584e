"""The multi_processing DirectRunner cuts a stage into bundles of bounded size
(`pipelines/bounded_bundles.py`): what a worker holds for a bundle no longer grows with the corpus,
and nothing of the stage's input is lost, doubled or changed on the way."""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam import coders
from apache_beam.coders.coders import GlobalWindowCoder
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import execution
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.core import Windowing
from apache_beam.transforms.window import GlobalWindows

from lemur_corpus.pipelines import bounded_bundles
from lemur_corpus.pipelines.bounded_bundles import bundle_count, cut
from lemur_corpus.pipelines.direct_runner import beam_pipeline


def list_buffer(*chunks: bytes) -> execution.ListBuffer:
    buffer = execution.ListBuffer(None)
    for chunk in chunks:
        buffer.append(chunk)
    return buffer


def test_bundles_are_a_multiple_of_the_workers_each_within_the_bound() -> None:
    small = {"in": list_buffer(b"x" * 100, b"y" * 100)}
    assert bundle_count(small, workers=2, max_bytes=1_000) == 2  # Beam's own cut: one per worker
    big = {"in": list_buffer(*[b"z" * 1_000] * 9), "other": list_buffer(b"w" * 500)}
    assert bundle_count(big, workers=2, max_bytes=1_000) == 10  # 9,500 bytes: 5 rounds of 2 bundles
    assert bundle_count(big, workers=3, max_bytes=1_000) == 12  # 4 rounds of 3
    assert bundle_count({}, workers=2) == 2


def grouping_buffer(table: dict[bytes, list]) -> execution.GroupingBuffer:
    """A GroupByKey's output as the runner holds it: its keys and its values as the SDK encoded them."""
    coder = coders.TupleCoder([coders.BytesCoder(), coders.BytesCoder()])
    buffer = execution.GroupingBuffer(coder, coder, Windowing(GlobalWindows()))
    for key, values in table.items():
        buffer._table[key].extend(values)
    return buffer


def test_a_grouping_is_bounded_by_its_bytes_as_well_as_by_its_values() -> None:
    """A lifted combiner's accumulators are one value per key and producing bundle, each as large as
    that bundle made it: few values, many bytes."""
    buffer = grouping_buffer({b"a": [b"x" * 30, b"y"], b"b": [b"z" * 9]})
    assert bounded_bundles.input_size(buffer) == (40, 3)
    # 10 keys of 2 accumulators of 500 bytes: 20 values (one bundle per worker by their count),
    # 10,000 bytes: 5 rounds of 2 bundles of at most 1,000
    accumulators = grouping_buffer({bytes([k]): [b"e" * 500, b"f" * 500] for k in range(10)})
    assert bundle_count({"in": accumulators}, workers=2, max_bytes=1_000) == 10
    assert bundle_count({"in": accumulators}, workers=2) == 2
    small = grouping_buffer({bytes([k]): [b"v"] * 500 for k in range(10)})  # 5,000 values of 5,000 bytes
    assert bundle_count({"in": small}, workers=2, max_bytes=10**6, max_values=1_000) == 6


def test_a_list_buffer_is_dealt_by_its_chunks_each_exactly_once() -> None:
    chunks = [bytes([n]) * (n + 1) for n in range(7)]
    parts = [list(part) for part in cut(list_buffer(*chunks), parts=4, workers=2)]
    assert len(parts) == 4
    assert sorted(c for part in parts for c in part) == sorted(chunks)
    assert parts[0] == [chunks[0], chunks[4]]
    # fewer chunks than workers: Beam's cut spreads the elements over the workers, the rest is empty
    assert [list(part) for part in cut(list_buffer(), parts=4, workers=2)] == [[], [], [], []]


def windowed_grouping_buffer(table: dict[bytes, list[bytes]]) -> execution.GroupingBuffer:
    """A GroupByKey's output with the coders the runner gives it: windowed keyed values in, a windowed
    key and its iterable of values out."""
    window = GlobalWindowCoder()
    keyed = coders.WindowedValueCoder(coders.TupleCoder([coders.BytesCoder(), coders.BytesCoder()]), window)
    grouped = coders.WindowedValueCoder(
        coders.TupleCoder([coders.BytesCoder(), coders.IterableCoder(coders.BytesCoder())]), window)
    buffer = execution.GroupingBuffer(keyed, grouped, Windowing(GlobalWindows()))
    for key, values in table.items():
        buffer._table[key].extend(values)
    return buffer


def test_a_grouping_is_cut_as_beam_cuts_it_and_its_values_leave_the_buffer_as_they_are_encoded() -> None:
    table = {bytes([k]) * (k + 1): [bytes([v]) * (v % 5 + 1) for v in range(k % 4 + 1)] for k in range(11)}
    ours = windowed_grouping_buffer(table)
    parts = bounded_bundles.cut(ours, parts=4, workers=2)
    first = list(parts[0])
    assert len(ours._table) == 11 - 3  # a part's keys leave the buffer when the part is read
    read = [first, *(list(part) for part in parts[1:])]
    assert read == windowed_grouping_buffer(table).partition(4)  # the same keys in the same parts, the same bytes
    assert sum(len(part[0]) for part in read) > 11 * 12  # every key and value is in them
    assert not ours._table  # nothing of the grouping is left in the runner's buffer


def test_a_released_input_cannot_be_read_again_as_if_it_were_empty() -> None:
    """The runner frees a stage's input as its bundles run (`release`); a second reader of it would be a
    bug in that assumption, and must fail loudly rather than see an empty collection."""
    chunks = list_buffer(b"a", b"b", b"c")
    assert [list(part) for part in bounded_bundles.cut(chunks, parts=3, workers=2)] == [[b"a"], [b"b"], [b"c"]]
    bounded_bundles.release(chunks)
    with pytest.raises(RuntimeError):
        list(chunks)
    grouping = windowed_grouping_buffer({b"k": [b"v"]})
    bounded_bundles.cut(grouping, parts=3, workers=2)
    bounded_bundles.release(grouping)
    with pytest.raises(RuntimeError, match="read again"):
        list(grouping)
    with pytest.raises(RuntimeError, match="read again"):
        bounded_bundles.cut(grouping, parts=3, workers=2)[0]


class CountBundles(beam.DoFn):
    def __init__(self) -> None:
        self.bundles = Metrics.counter("test", "bundles")

    def start_bundle(self) -> None:
        self.bundles.inc()

    def process(self, element: int):  # type: ignore[no-untyped-def]
        yield element % 97, element


@pytest.mark.slow
def test_a_stage_cut_into_many_bundles_gives_the_same_results(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bounded_bundles, "MAX_BUNDLE_BYTES", 2_000)
    monkeypatch.setattr(bounded_bundles, "MAX_BUNDLE_GROUPED_VALUES", 300)
    numbers = list(range(20_000))
    options = PipelineOptions(["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    pipeline = beam_pipeline(options)
    keyed = (pipeline | beam.Create(numbers) | beam.Reshuffle() | "Key" >> beam.ParDo(CountBundles()))
    sums = keyed | beam.CombinePerKey(sum)
    groups = keyed | beam.GroupByKey() | beam.MapTuple(lambda key, values: (key, sorted(values)))
    expected_sums = [(k, sum(n for n in numbers if n % 97 == k)) for k in range(97)]
    assert_that(sums, equal_to(expected_sums), label="Sums")
    assert_that(groups, equal_to([(k, [n for n in numbers if n % 97 == k]) for k in range(97)]), label="Groups")
    assert_that(keyed | beam.combiners.Count.Globally(), equal_to([len(numbers)]), label="Count")
    result = pipeline.run()
    result.wait_until_finish()
    bundles = result.metrics().query(MetricsFilter().with_name("bundles"))["counters"]
    assert sum(c.committed for c in bundles) > 2  # the stage ran in more bundles than workers



class CountAfterGrouping(beam.DoFn):
    def __init__(self) -> None:
        self.bundles = Metrics.counter("test", "after_grouping_bundles")

    def start_bundle(self) -> None:
        self.bundles.inc()

    def process(self, element: tuple[int, list[int]]):  # type: ignore[no-untyped-def]
        yield element


def test_is_empty_reads_a_buffer_without_consuming_it() -> None:
    assert bounded_bundles.is_empty(list_buffer()) and bounded_bundles.is_empty(list_buffer(b""))
    assert not bounded_bundles.is_empty(list_buffer(b"", b"x"))
    assert not bounded_bundles.is_empty(object())  # a kind not known here: never skipped


@pytest.mark.slow
def test_a_stage_with_empty_input_runs_no_bundle_and_its_consumers_see_an_empty_collection() -> None:
    """Nothing passes the filter: the grouping's consumer is not run on any worker (no bundle), yet
    the global count still gives its default, a side input of the empty collection reads as empty,
    and a grouping that does receive elements runs as usual."""
    options = PipelineOptions(["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    pipeline = beam_pipeline(options)
    numbers = pipeline | "Numbers" >> beam.Create([1, 2, 3])
    nothing = numbers | "NoneAbove10" >> beam.Filter(lambda n: n > 10)
    grouped = (nothing | "KeyNothing" >> beam.Map(lambda n: (n, n)) | "GroupNothing" >> beam.GroupByKey()
               | "AfterNothing" >> beam.ParDo(CountAfterGrouping()))
    assert_that(grouped, equal_to([]), label="Grouped")
    assert_that(nothing | beam.combiners.Count.Globally(), equal_to([0]), label="Count")
    sizes = pipeline | "Seed" >> beam.Create(["seed"]) | "SideSize" >> beam.Map(
        lambda seed, side: (seed, len(side)), side=beam.pvalue.AsList(nothing))
    assert_that(sizes, equal_to([("seed", 0)]), label="Side")
    some = (numbers | "KeySome" >> beam.Map(lambda n: (n % 2, n)) | "GroupSome" >> beam.GroupByKey()
            | beam.MapTuple(lambda key, values: (key, sorted(values))))
    assert_that(some, equal_to([(0, [2]), (1, [1, 3])]), label="Some")
    result = pipeline.run()
    result.wait_until_finish()
    bundles = result.metrics().query(MetricsFilter().with_name("after_grouping_bundles"))["counters"]
    assert sum(c.committed for c in bundles) == 0
