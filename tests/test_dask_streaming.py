"""The DaskRunner's chains stream: each element goes through every ParDo of a fused chain before the
next is read (`dask_bundles.stream_steps`), and a transfer task hands what its chain makes to the
shuffle piece by piece (`dask_p2p.hand_over`), also where the chain runs on another grouping's
output, whose unpack is then done in the transfer task itself (`dask_p2p.unpacked_transfer`).
Same outputs, in the same order, as the steps run one after the other on whole partitions."""

from __future__ import annotations

import collections
import contextlib
import pickle
import typing as t
from unittest import mock

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from tests.test_dask_tasks import HoldUntilFinish, counted_graph, options

pytest.importorskip("dask.distributed")


class Logged(beam.DoFn):
    """Appends (name, element) to `log` and emits the element, plus 1 on the tag `odd` for an odd one."""

    def __init__(self, name: str, log: list[t.Any]) -> None:
        self.name, self.log = name, log

    def process(self, n: int) -> t.Iterator[t.Any]:
        self.log.append((self.name, n))
        yield n
        if n % 2:
            yield beam.pvalue.TaggedOutput("odd", n + 1)


def step(fn: beam.DoFn, label: str) -> t.Any:
    from lemur_corpus.pipelines.dask_bundles import BundleStep

    return BundleStep(fn=fn, label=label, window_fn=None, args=[], kwargs={}, specs=[])


def values(items: t.Iterable[t.Any]) -> list[t.Any]:
    """Outputs as plain values (a tagged output travels as its windowed value)."""
    return [getattr(item, "value", item) for item in items]


def test_a_chain_takes_each_element_through_every_step_before_reading_the_next() -> None:
    from lemur_corpus.pipelines.dask_bundles import FusedSteps, run_steps, stream_steps

    log: list[t.Any] = []

    def read() -> t.Iterator[int]:
        for n in range(5):
            log.append(("read", n))
            yield n

    def in_turn(steps: tuple[t.Any, ...]) -> list[t.Any]:
        """One step after the other on the whole partition: what the chain must give."""
        items: list[t.Any] = list(range(5))
        for one in steps:
            items = run_steps(items, FusedSteps("run-in-turn", (one,), trim=False))
        log.clear()
        return values(items)

    first, hold, last = (step(Logged("first", log), "First"), step(HoldUntilFinish(), "Hold"),
                         step(Logged("last", log), "Last"))
    expected = in_turn((first, last))
    assert expected == [0, 1, 2, 2, 2, 3, 4, 4, 4]  # the tagged outputs of the first step reach the last too
    outputs = stream_steps(read(), FusedSteps("run-lazy", (first, last), trim=False))
    assert values([next(outputs)]) == [0] and log == [("read", 0), ("first", 0), ("last", 0)]  # nothing read ahead
    assert [0, *values(outputs)] == expected
    expected = in_turn((first, hold, last))
    assert values(stream_steps(read(), FusedSteps("run-streams", (first, hold, last), trim=False))) == expected
    # the baseline (`STREAM_CHAINS` off): the same outputs, each step on the whole partition in turn
    log.clear()
    whole = FusedSteps("run-whole", (first, hold, last), trim=False, stream=False)
    assert values(stream_steps(read(), whole)) == expected
    assert log.index(("first", 4)) < log.index(("last", 0))
    # Hold keeps its elements until its finish_bundle: the first step has read all before the last sees one
    assert log.index(("read", 4)) < log.index(("last", 0))


def test_a_failed_chain_sets_every_step_up_anew() -> None:
    """As Beam does with a failed bundle: the DoFn instances of the chain are not used again."""
    from lemur_corpus.pipelines import dask_bundles
    from lemur_corpus.pipelines.dask_bundles import FusedSteps, stream_steps

    class Fails(beam.DoFn):
        def process(self, n: int) -> t.Iterator[int]:
            if n == 3:
                raise ValueError("element 3")
            yield n

    log: list[t.Any] = []
    fused = FusedSteps("run-fails", (step(Logged("first", log), "First"), step(Fails(), "Fails")), trim=False)
    with pytest.raises(ValueError, match="element 3"):
        list(stream_steps(range(5), fused))
    assert not [key for key in dask_bundles._WORKER_FNS if key[0] == "run-fails"]


class Handed(t.NamedTuple):
    items: list[t.Any]
    piece_id: int


def handed_over(items: list[t.Any], ntransfers: int, partition: int, piece_items: int) -> list[Handed]:
    """What `hand_over` gives the shuffle, with distributed's transfer replaced by a recorder."""
    from lemur_corpus.pipelines.dask_p2p import BLOB, BLOBS, Target, hand_over

    calls: list[Handed] = []

    def record(table: t.Any, shuffle_id: str, piece_id: int) -> int:
        calls.append(Handed([item for blob in table[BLOB].to_pylist() for _, item in pickle.loads(blob)], piece_id))
        return 7

    with mock.patch("distributed.shuffle._shuffle.shuffle_transfer", record):
        assert hand_over(items, Target("s", ntransfers, 1, BLOBS, piece_items), partition) == 7
    return calls


def test_a_transfer_hands_its_items_over_in_pieces_numbered_in_order() -> None:
    from lemur_corpus.pipelines.dask_p2p import piece_bits

    items = [(n % 3, n) for n in range(10)]
    bits = piece_bits(40)
    assert bits == 26  # 40 transfers take 6 of the input partition id's 32 bits
    calls = handed_over(items, ntransfers=40, partition=5, piece_items=3)
    assert [call.items for call in calls] == [items[0:3], items[3:6], items[6:9], items[9:]]
    assert [call.piece_id for call in calls] == [(5 << bits) | k for k in range(4)]
    assert max(call.piece_id for call in handed_over(items, 40, 39, 3)) < 2**32  # distributed's uint32
    # the next transfer's pieces all come after this one's: an output partition's rows keep the order
    assert max(call.piece_id for call in calls) < min(call.piece_id for call in handed_over(items, 40, 6, 3))
    # an empty partition still reaches the barrier; when the piece numbers run out the last takes the rest
    assert handed_over([], 40, 5, 3) == [Handed([], 5 << bits)]
    tight = handed_over(items, ntransfers=2**31, partition=3, piece_items=3)
    assert [call.items for call in tight] == [items[0:3], items[3:]] and [c.piece_id for c in tight] == [6, 7]


def regrouped(p: beam.Pipeline) -> beam.PCollection:
    """64 partitions of 10 items each, grouped, then each group's items grouped again: the second
    grouping reads a chain that runs on the first one's output partitions."""
    return (p
            | "Create" >> beam.Create(list(range(64)))
            | "Ten" >> beam.FlatMap(lambda n: [(n % 8, 10 * n + j) for j in range(10)])
            | "Group" >> beam.GroupByKey()
            | "Spread" >> beam.FlatMap(lambda kv: [(n % 5, n) for n in kv[1]])
            | "Regroup" >> beam.GroupByKey()
            | "Sorted" >> beam.MapTuple(lambda k, ns: (k, sorted(ns))))


@pytest.mark.parametrize("from_unpack", [True, False])
def test_a_grouping_of_a_groupings_output_transfers_from_its_unpack_tasks(dask_cluster, from_unpack: bool) -> None:  # type: ignore[no-untyped-def]
    """The chain after the first grouping runs in the second one's transfer tasks, each the first
    one's unpack task too (no unpack task of its own), and hands its items over three at a time.
    Off (the baseline): the first grouping's unpack tasks run the chain, their results transferred."""
    from lemur_corpus.pipelines import dask_p2p

    want = [(k, [n for n in range(640) if n % 5 == k]) for k in range(5)]
    with contextlib.ExitStack() as patched:
        patched.enter_context(mock.patch.object(dask_p2p, "ITEMS_PER_PIECE", 3))
        patched.enter_context(mock.patch.object(dask_p2p, "TRANSFER_FROM_UNPACK", from_unpack))
        with beam.Pipeline(options=options(dask_cluster)) as p:
            assert_that(regrouped(p), equal_to(want))
        tasks = counted_graph(dask_cluster, regrouped)
    assert tasks["shuffle-barrier"] == 2 and tasks["shuffle-transfer"] == 64 + 64
    assert tasks["p2p-groups"] == (64 if from_unpack else 2 * 64)  # with: the second grouping's unpack tasks only


def grouped_in_order(p: beam.Pipeline) -> beam.PCollection:
    """64 partitions of 10 items each, grouped, each group's items as they came (not sorted)."""
    return (p
            | "Create" >> beam.Create(list(range(64)))
            | "Ten" >> beam.FlatMap(lambda n: [(n % 8, 10 * n + j) for j in range(10)])
            | "Group" >> beam.GroupByKey()
            | "AsList" >> beam.MapTuple(lambda k, ns: (k, list(ns))))


@pytest.mark.parametrize("piece_items", [3, 10_000])
def test_a_group_keeps_its_items_order_whatever_the_pieces(dask_cluster, piece_items: int) -> None:  # type: ignore[no-untyped-def]
    """A group's items come in the order of their input partitions, and within one in the order
    they were made, whether a partition goes over in one piece or in four."""
    from lemur_corpus.pipelines import dask_p2p

    want = [(k, [n for n in range(640) if (n // 10) % 8 == k]) for k in range(8)]
    with contextlib.ExitStack() as patched:
        patched.enter_context(mock.patch.object(dask_p2p, "ITEMS_PER_PIECE", piece_items))
        with beam.Pipeline(options=options(dask_cluster)) as p:
            assert_that(grouped_in_order(p), equal_to(want))
    assert collections.Counter(n // 10 % 8 for n in range(640)) == {k: 80 for k in range(8)}


def test_an_unpacked_partition_lets_go_of_each_group_as_it_is_read() -> None:
    from lemur_corpus.pipelines.dask_p2p import drained

    groups = [(k, [k] * 3) for k in range(4)]
    held = groups
    read = drained(groups)
    assert next(read) == (0, [0, 0, 0]) and len(held) == 3  # the list no longer holds what was read
    assert list(read) == [(k, [k] * 3) for k in range(1, 4)] and held == []


class KillWorkerOnce(beam.DoFn):
    """Kills its own worker process (SIGKILL) at its first element, once per marker file: the
    worker dies in the middle of the build, its nanny starts a new one, and its shuffles restart."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def process(self, element: t.Any) -> t.Iterator[t.Any]:
        import os
        import signal

        try:
            open(self.marker, "x").close()
        except FileExistsError:
            pass
        else:
            os.kill(os.getpid(), signal.SIGKILL)
        yield element


def regrouped_with_a_kill(marker: str, where: str) -> t.Callable[[beam.Pipeline], beam.PCollection]:
    """`regrouped` with a worker killed once: in the chain after the first grouping (the second
    grouping's transfer tasks, which unpack the first), or after the second grouping (its unpack
    tasks, once the first grouping's run has ended)."""
    def make(p: beam.Pipeline) -> beam.PCollection:
        grouped = (p
                   | "Create" >> beam.Create(list(range(64)))
                   | "Ten" >> beam.FlatMap(lambda n: [(n % 8, 10 * n + j) for j in range(10)])
                   | "Group" >> beam.GroupByKey())
        if where == "transfer":
            grouped = grouped | "Kill" >> beam.ParDo(KillWorkerOnce(marker))
        regrouped = (grouped
                     | "Spread" >> beam.FlatMap(lambda kv: [(n % 5, n) for n in kv[1]])
                     | "Regroup" >> beam.GroupByKey())
        if where == "unpack":
            regrouped = regrouped | "Kill" >> beam.ParDo(KillWorkerOnce(marker))
        return regrouped | "Sorted" >> beam.MapTuple(lambda k, ns: (k, sorted(ns)))
    return make


@pytest.mark.slow
@pytest.mark.parametrize("where", ["transfer", "unpack"])
def test_a_worker_killed_during_a_grouping_of_a_groupings_output_gives_the_same_groups(tmp_path, where: str) -> None:  # type: ignore[no-untyped-def]
    """A restarted shuffle reruns its transfer tasks; where they unpack the first grouping, that
    grouping reruns too (still running, or ended and rerun by the scheduler from its inputs)."""
    import distributed
    from apache_beam.options.pipeline_options import PipelineOptions

    from lemur_corpus.pipelines.build import RUNNER_ALIASES
    from lemur_corpus.pipelines.interrupts import quiet_logger

    marker = tmp_path / "killed"
    want = [(k, [n for n in range(640) if n % 5 == k]) for k in range(5)]
    with (quiet_logger("distributed"),  # the scheduler's account of the lost worker and the restarts
          distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                   dashboard_address=":0") as cluster):
        opts = PipelineOptions([f"--runner={RUNNER_ALIASES['DaskRunner']}",
                                f"--dask_client_address={cluster.scheduler_address}", "--dask_shuffle=p2p"])
        with beam.Pipeline(options=opts) as p:
            assert_that(regrouped_with_a_kill(str(marker), where)(p), equal_to(want))
    assert marker.exists()  # a worker was killed
