"""The DaskRunner's task layout: chains of ParDos fused into one task per partition
(`pipelines/dask_bundles.py`) and P2P groupings written as distributed's own shuffle tasks, with the
ParDos after them in the unpack tasks (`pipelines/dask_p2p.py`). The same results either way; the
graph has the tasks the layout promises. (The build's bytes on every layout and runner:
`tests/test_runners.py`.)"""

from __future__ import annotations

import collections
import contextlib
import typing as t
from unittest import mock

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from benchmarks.dask_graph import GraphCounted, count_graph, task_kind
from lemur_corpus.pipelines.build import RUNNER_ALIASES

pytest.importorskip("dask.distributed")


class CountSetups(beam.DoFn):
    """Adds the side input's sum to each element; counts its setups (once per worker and thread)."""

    def setup(self) -> None:
        self.ready = True

    def process(self, n: int, offset: list[int]) -> t.Iterator[int]:
        assert self.ready
        yield n + sum(offset)


class HoldUntilFinish(beam.DoFn):
    """Emits every element of its bundle in `finish_bundle` (outputs a fused chain must keep)."""

    def start_bundle(self) -> None:
        self.held: list[int] = []

    def process(self, n: int) -> t.Iterator[int]:
        self.held.append(n)
        return iter(())

    def finish_bundle(self) -> t.Iterator[t.Any]:
        from apache_beam.transforms.window import GlobalWindow
        from apache_beam.utils.windowed_value import WindowedValue

        for n in self.held:
            yield WindowedValue(n, -1, [GlobalWindow()])


def pipeline(p: beam.Pipeline, items: int = 64) -> dict[str, beam.PCollection]:
    """A chain of four ParDos (one with a side input, one emitting in `finish_bundle`), a fan-out to
    two ParDos and a grouping with two ParDos after it; and a chain of two ParDos that only a
    grouping reads."""
    numbers = p | "Create" >> beam.Create(list(range(items)))
    offset = p | "Offset" >> beam.Create([1000])
    chain = (
        numbers
        | "Double" >> beam.Map(lambda n: 2 * n)
        | "AddOffset" >> beam.ParDo(CountSetups(), beam.pvalue.AsList(offset))
        | "Hold" >> beam.ParDo(HoldUntilFinish())
        | "Keyed" >> beam.Map(lambda n: (n % 5, n))
    )
    left = chain | "Left" >> beam.MapTuple(lambda k, n: n)
    right = chain | "Right" >> beam.MapTuple(lambda k, n: -n)
    grouped = (
        chain
        | "Group" >> beam.GroupByKey()
        | "Sorted" >> beam.MapTuple(lambda k, ns: (k, sorted(ns)))
        | "Count" >> beam.MapTuple(lambda k, ns: (k, len(ns)))
    )
    squares = (
        numbers
        | "Square" >> beam.Map(lambda n: n * n)
        | "KeyBy3" >> beam.Map(lambda n: (n % 3, n))
        | "GroupSquares" >> beam.GroupByKey()
        | "Sums" >> beam.MapTuple(lambda k, ns: (k, sum(ns)))
    )
    return {"left": left, "right": right, "grouped": grouped, "squares": squares}


def options(dask_cluster, shuffle: str = "p2p") -> PipelineOptions:  # type: ignore[no-untyped-def]
    return PipelineOptions([f"--runner={RUNNER_ALIASES['DaskRunner']}",
                            f"--dask_client_address={dask_cluster.scheduler_address}", f"--dask_shuffle={shuffle}"])


def counted_graph(dask_cluster, make: t.Callable[[beam.Pipeline], t.Any],  # type: ignore[no-untyped-def]
                  **switches: bool) -> collections.Counter[str]:
    """The tasks of `make`'s pipeline's graph, counted (nothing runs), with the runner's `switches`
    set (`dask_runner`'s names)."""
    import distributed

    from lemur_corpus.pipelines import dask_runner

    with contextlib.ExitStack() as patched:
        patched.enter_context(mock.patch.object(distributed.Client, "compute", count_graph))
        for name, value in switches.items():
            patched.enter_context(mock.patch.object(dask_runner, name, value))
        try:
            with beam.Pipeline(options=options(dask_cluster)) as p:
                make(p)
        except GraphCounted as counted:
            return counted.counts
    raise AssertionError("the graph was never handed to the scheduler")


def graph_of(dask_cluster, fuse: bool, p2p_tasks: bool) -> collections.Counter[str]:  # type: ignore[no-untyped-def]
    return counted_graph(dask_cluster, pipeline, FUSE_PARDOS=fuse, P2P_TASKS=p2p_tasks)


def expected(items: int = 64) -> dict[str, list[t.Any]]:
    values = [2 * n + 1000 for n in range(items)]
    groups = collections.Counter(n % 5 for n in values)
    squares = {k: sum(n * n for n in range(items) if n * n % 3 == k) for k in range(3)}
    return {"left": values, "right": [-n for n in values], "grouped": sorted(groups.items()),
            "squares": sorted((k, v) for k, v in squares.items() if v)}


@pytest.mark.parametrize(("fuse", "p2p_tasks"), [(True, True), (False, False), (True, False), (False, True)])
def test_fused_chains_and_p2p_tasks_give_the_same_results(dask_cluster, fuse: bool, p2p_tasks: bool) -> None:  # type: ignore[no-untyped-def]
    from lemur_corpus.pipelines import dask_runner

    with mock.patch.object(dask_runner, "FUSE_PARDOS", fuse), mock.patch.object(dask_runner, "P2P_TASKS", p2p_tasks):
        with beam.Pipeline(options=options(dask_cluster)) as p:
            outputs = pipeline(p)
            for name, want in expected().items():
                assert_that(outputs[name], equal_to(want), label=f"Check{name}")


def test_a_chain_is_one_task_per_partition_and_a_fan_out_is_not_fused(dask_cluster) -> None:  # type: ignore[no-untyped-def]
    """Double reads Create's output, which Square reads too, and AddOffset has a side input, so
    Double is a task of its own (64: it does not wait for the side input, which would keep the
    shared partition); AddOffset -> Hold -> Keyed is one task per partition (64), read by three
    transforms, so Left and Right are tasks of their own (64 each); Sorted -> Count run in the
    grouping's unpack tasks; Square -> KeyBy3, read by a grouping alone, run in its transfer tasks
    and Sums in its unpack tasks. Unfused, each of the 11 ParDos is 64 tasks, and so is the
    `ReifyWindows` ParDo Beam puts before each of the two groupings."""
    fused = graph_of(dask_cluster, fuse=True, p2p_tasks=True)
    unfused = graph_of(dask_cluster, fuse=False, p2p_tasks=True)
    partitions = 64
    assert fused["run_steps"] == 4 * partitions
    assert unfused["run_steps"] == (11 + 2) * partitions
    for graph in (fused, unfused):
        assert graph["p2p-groups"] == graph["shuffle-transfer"] == 2 * partitions
        assert graph["shuffle-barrier"] == 2


def test_a_p2p_grouping_is_distributeds_tasks_and_nothing_else(dask_cluster) -> None:  # type: ignore[no-untyped-def]
    """Per partition: one transfer task and one unpack task (with the ParDos after the grouping),
    and one barrier; through `dask.dataframe` the same grouping took a table task, aliases, a
    partition index task and a groups task besides."""
    from lemur_corpus.pipelines import dask_p2p

    assert dask_p2p.available(), "this distributed lacks the P2P shuffle tasks dask_p2p writes"
    tasks = graph_of(dask_cluster, fuse=True, p2p_tasks=True)
    frames = graph_of(dask_cluster, fuse=True, p2p_tasks=False)
    partitions = 64
    assert tasks["shuffle-transfer"] == tasks["p2p-groups"] == 2 * partitions and tasks["shuffle-barrier"] == 2
    assert "shuffle_frame" not in tasks and "groups_of_frame" not in tasks
    assert frames["shuffle_frame"] == frames["groups_of_frame"] == 2 * partitions
    assert sum(tasks.values()) + 2 * 4 * partitions <= sum(frames.values())


def test_the_shuffle_table_names_each_rows_output_partition() -> None:
    from lemur_corpus.pipelines.dask_p2p import PARTITION, groups_of_frame, key_hash, shuffle_frame

    items = [((i % 7, "k"), i) for i in range(50)]
    frame = shuffle_frame(items, 6)
    assert list(frame[PARTITION]) == [key_hash(key) % 6 for key, _ in items]
    assert PARTITION not in shuffle_frame(items).columns
    groups = dict(groups_of_frame(frame))
    assert groups == {(k, "k"): list(range(k, 50, 7)) for k in range(7)}


def test_a_blob_table_has_a_row_per_output_partition_and_groups_across_inputs() -> None:
    """`partition_blobs`: each row is one part of one output partition with every item whose key
    hashes there, pickled together; the rows of two input pieces, as the shuffle delivers them
    (received in any order, each with its piece), group into one list per key, the values in the
    order of the pieces, one part after the other."""
    import pickle

    import pyarrow as pa

    from lemur_corpus.pipelines import dask_p2p as p2p

    first = [((i % 7, "k"), i) for i in range(50)]
    second = [((i % 7, "k"), i) for i in range(50, 80)]
    table = p2p.partition_blobs(first, 2, 3)
    rows = list(zip(table[p2p.PARTITION].to_pylist(), table[p2p.SUBGROUP].to_pylist(), strict=True))
    assert rows == sorted({(p2p.key_hash(key) % 2, p2p.key_hash(key) // 2 % 3) for key, _ in first})
    for (partition, part), blob in zip(rows, table[p2p.BLOB].to_pylist(), strict=True):
        pairs = pickle.loads(blob)
        assert pairs and all((p2p.key_hash(item[0]) % 2, p2p.key_hash(item[0]) // 2 % 3) == (partition, part)
                             for _, item in pairs)
    assert sum(len(pickle.loads(blob)) for blob in table[p2p.BLOB].to_pylist()) == len(first)
    assert p2p.partition_blobs(first, 2)[p2p.SUBGROUP].to_pylist() == [0, 0]  # one part: a row per partition

    def received(piece: pa.Table, number: int) -> pa.Table:  # as distributed stores what it receives
        return piece.append_column(p2p.INPUT_PIECE, pa.array([number] * piece.num_rows, pa.uint32()))

    delivered = pa.concat_tables([received(p2p.partition_blobs(second, 2, 3), 1), received(table, 0)])
    groups = list(p2p.groups_of_blobs(delivered.drop([p2p.PARTITION])))
    assert dict(groups) == {(k, "k"): [*range(k, 50, 7), *range(50 + (k - 50) % 7, 80, 7)] for k in range(7)}
    parts = [p2p.key_hash(key) // 2 % 3 for key, _ in groups]
    assert len(groups) == 7 and parts == sorted(parts)  # part by part
    empty = p2p.partition_blobs([], 6, 3)
    assert empty.column_names == [p2p.PARTITION, p2p.SUBGROUP, p2p.BLOB] and empty.num_rows == 0
    assert list(p2p.groups_of_blobs(empty)) == []
    assert list(p2p.blob_meta(6).columns) == [p2p.PARTITION, p2p.SUBGROUP, p2p.BLOB]


@pytest.mark.parametrize("blobs", [True, False])
def test_a_p2p_grouping_gives_the_same_groups_with_blobs_or_item_rows(dask_cluster, blobs: bool) -> None:  # type: ignore[no-untyped-def]
    want = [(k, sorted(n for n in FLATTENED if n % 4 == k)) for k in range(4)]
    tasks = checked_and_counted(dask_cluster, grouped_flatten, want, P2P_BLOBS=blobs)
    assert tasks["p2p-groups"] == 40 and tasks["shuffle-barrier"] == 1


def documents(count: int, words: int = 400) -> list[t.Any]:
    from lemur_corpus.document import Document

    return [Document(id=f"web/{i}", source="refinedweb", kind="text", text=f"word{i} " * words,
                     meta={"url": f"https://example.org/{i}"}, origin=f"web.jsonl:{i + 1}") for i in range(count)]


def test_a_worker_weighs_a_record_with_what_it_points_to() -> None:
    """Dask's default weight of an object is its header (72 bytes for a Document of a 4 KB page);
    with `pipelines/dask_sizeof.py` a partition weighs about what it takes in memory."""
    import tracemalloc

    from dask.sizeof import sizeof

    from lemur_corpus.pipelines import dask_bundles  # noqa: F401  # registers the weights on import
    from lemur_corpus.pipelines.dask_sizeof import RECORD_TYPES
    from lemur_corpus.pipelines.tokenize import TokenizedDoc
    from lemur_corpus.token_spill import SpilledTokens

    tracemalloc.start()
    try:
        partition = documents(2_000)
        allocated, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    text_bytes = sum(len(d.text) for d in partition)
    assert text_bytes <= sizeof(partition) and 0.8 * allocated <= sizeof(partition) <= 1.25 * allocated
    text = partition[0].text  # a tokenized document keeps its text when the texts are written too
    spilled = SpilledTokens("/build/shards/spill-" + "0" * 32 + ".bin", 0, 5_000)
    assert sizeof(TokenizedDoc("web/1", "refinedweb", "text", spilled, 20_000, text)) > len(text)
    assert all(sizeof.dispatch(cls) is not sizeof.dispatch(object) for cls in RECORD_TYPES)


def test_a_cluster_worker_counts_a_partition_of_documents_as_managed_memory(dask_cluster) -> None:  # type: ignore[no-untyped-def]
    """What the worker reports of a result a build's task left on it (the figure it spills by):
    at least the documents' text, on a worker process that imported nothing but the task's module."""
    from apache_beam.transforms.window import GlobalWindows
    from distributed import Client

    from lemur_corpus.pipelines.dask_bundles import materialize

    partition = documents(500)
    with Client(dask_cluster) as client:
        held = client.submit(materialize, GlobalWindows(), partition, pure=False)
        held.result()
        weights = client.run(lambda dask_worker, key=held.key: getattr(dask_worker.state.tasks.get(key), "nbytes", 0))
    assert max(weights.values()) >= sum(len(d.text) for d in partition)


def flattened(p: beam.Pipeline) -> beam.PCollection:
    """A Flatten of inputs of 40 and 3 partitions, one of them twice."""
    wide = p | "Wide" >> beam.Create(list(range(40)))
    narrow = p | "Narrow" >> beam.Create([100, 101, 102])
    shifted = wide | "Shift" >> beam.Map(lambda n: n + 1000)
    return (wide, narrow, shifted, narrow) | "Flatten" >> beam.Flatten()


FLATTENED = [*range(40), 100, 101, 102, 100, 101, 102, *range(1000, 1040)]
"""`flattened`'s elements."""


def checked_and_counted(dask_cluster, make: t.Callable[[beam.Pipeline], beam.PCollection],  # type: ignore[no-untyped-def]
                        want: list[t.Any], **switches: bool) -> collections.Counter[str]:
    """`make`'s pipeline run with the runner's `switches` set, its output checked against `want`;
    then the tasks of its graph, counted (`counted_graph`)."""
    from lemur_corpus.pipelines import dask_runner

    with contextlib.ExitStack() as patched:
        for name, value in switches.items():
            patched.enter_context(mock.patch.object(dask_runner, name, value))
        with beam.Pipeline(options=options(dask_cluster)) as p:
            assert_that(make(p), equal_to(want))
    return counted_graph(dask_cluster, make, **switches)


@pytest.mark.parametrize("by_partition", [True, False])
def test_a_flatten_is_one_task_per_partition_of_its_widest_input(dask_cluster, by_partition: bool) -> None:  # type: ignore[no-untyped-def]
    tasks = checked_and_counted(dask_cluster, flattened, FLATTENED, FLATTEN_BY_PARTITION=by_partition)
    # (without a P2P grouping Dask optimizes the graph: the Flatten's tasks may carry a fused suffix)
    flatten = sum(n for kind, n in tasks.items() if kind.startswith("flatten"))
    repartitioned = sum(n for kind, n in tasks.items() if kind.startswith(("concat", "repartition")))
    if by_partition:
        assert flatten == 40 and repartitioned == 0
    else:
        assert flatten == 0 and repartitioned > 40


def grouped_flatten(p: beam.Pipeline) -> beam.PCollection:
    """`flattened`'s items grouped by their remainder mod 4 (what a CoGroupByKey does: a Flatten
    of keyed inputs, then a grouping)."""
    return (flattened(p)
            | "KeyBy4" >> beam.Map(lambda n: (n % 4, n))
            | "Group" >> beam.GroupByKey()
            | "Sorted" >> beam.MapTuple(lambda k, ns: (k, sorted(ns))))


@pytest.mark.parametrize("into_shuffle", [True, False])
def test_a_grouping_of_a_flatten_transfers_each_input_as_it_is_ready(dask_cluster, into_shuffle: bool) -> None:  # type: ignore[no-untyped-def]
    """On: a transfer task per partition of each of the Flatten's inputs (40 + 3 + 40 + 3: `Shift`,
    read by the Flatten alone, runs in its transfers), no Flatten task, and as many output
    partitions as the widest input. Off: the Flatten's 40 tasks, then a transfer of each."""
    want = [(k, sorted(n for n in FLATTENED if n % 4 == k)) for k in range(4)]
    tasks = checked_and_counted(dask_cluster, grouped_flatten, want, FLATTEN_INTO_SHUFFLE=into_shuffle)
    assert tasks["p2p-groups"] == 40 and tasks["shuffle-barrier"] == 1
    if into_shuffle:
        assert tasks["shuffle-transfer"] == 40 + 3 + 40 + 3 and "flatten" not in tasks
        assert "run_steps" not in tasks  # Shift, KeyBy4 and ReifyWindows run in the transfers
    else:
        assert tasks["shuffle-transfer"] == 40 and tasks["flatten"] == 40


def test_a_chain_task_trims_the_heap_at_most_every_interval() -> None:
    """`run_steps` hands freed heap memory back after a chain (a glibc `malloc_trim(0)`), at most
    once per `TRIM_INTERVAL_S`; a chain made with trimming off never trims, and the setting
    travels with the chain as it grows and into a grouping's transfer tasks."""
    from apache_beam.transforms.window import GlobalWindows

    from lemur_corpus.pipelines import worker_memory
    from lemur_corpus.pipelines.dask_bundles import BundleStep, FusedSteps, run_steps
    from lemur_corpus.pipelines.dask_p2p import Chain, Source

    step = BundleStep(beam.transforms.core.CallableWrapperDoFn(lambda n: [n + 1]), "Plus1", GlobalWindows(), [], {}, [])
    calls: list[int] = []
    with mock.patch.object(worker_memory, "MALLOC_TRIM", lambda pad: calls.append(pad) or 1), \
            mock.patch.object(worker_memory, "_last_trim", [0.0]), \
            mock.patch.object(worker_memory.time, "monotonic", side_effect=[100.0, 100.1, 100.7]):
        on = FusedSteps("test-trim", (step,), trim=True).then(step)
        assert run_steps([1, 2], on) == [3, 4]  # trims (first time)
        assert run_steps([1], on) == [3]  # 0.1 s later: not again
        assert run_steps([1], on) == [3]  # 0.7 s after the first: trims
        assert calls == [0, 0]
        off = FusedSteps("test-trim", (step,), trim=False).then(step)
        assert run_steps([1], off) == [3] and calls == [0, 0]  # never asks the clock
    assert on.trim and not off.trim
    chain = Chain(off, [], None)
    assert not Source(None, on).then(chain).fused.trim
    assert Source(None).then(Chain(on, [], None)).fused.trim


class Halves(beam.DoFn):
    """Even numbers on the main output, odd ones on `odd` (a multi-output ParDo, as the build's stages are)."""

    def process(self, n: int) -> t.Iterator[t.Any]:
        yield n if n % 2 == 0 else beam.pvalue.TaggedOutput("odd", n)


def multi_output(p: beam.Pipeline) -> dict[str, beam.PCollection]:
    """A multi-output ParDo read by three transforms: the even numbers grouped by n mod 3 (their
    `Only_even` split runs in the grouping's transfers), the odd ones squared (a chain of its own)."""
    from lemur_corpus.pipelines.outputs import MultiOutputParDo

    halves = p | "Create" >> beam.Create(list(range(64))) | "Halves" >> MultiOutputParDo(Halves(), "odd", main="even")
    grouped = (halves["even"]
               | "KeyBy3" >> beam.Map(lambda n: (n % 3, n))
               | "Group" >> beam.GroupByKey()
               | "Sorted" >> beam.MapTuple(lambda k, ns: (k, sorted(ns))))
    squares = halves["odd"] | "Square" >> beam.Map(lambda n: n * n)
    return {"grouped": grouped, "squares": squares}


class GraphCaught(Exception):
    """Raised in place of computing the graph: its tasks and their Dask priorities."""

    def __init__(self, graph: dict[t.Any, t.Any], priorities: dict[t.Any, int]) -> None:
        super().__init__("graph caught")
        self.graph, self.priorities = graph, priorities


def catch_graph(client: object, collections_: list, retries: int | None = None, optimize_graph: bool = True) -> None:
    from dask.base import collections_to_expr

    expr = collections_to_expr(collections_, optimize_graph=optimize_graph)
    raise GraphCaught(dict(expr.__dask_graph__()), expr.__dask_annotations__().get("priority", {}))


def chain_labels(task: t.Any) -> tuple[str, ...]:
    """The labels of the ParDos a task runs (its `FusedSteps`), wherever they sit in its arguments."""
    from lemur_corpus.pipelines.dask_bundles import FusedSteps

    for arg in (*getattr(task, "args", ()), getattr(task, "value", None)):
        if isinstance(arg, FusedSteps):
            return tuple(step.label for step in arg.steps)
        if hasattr(arg, "args") or hasattr(arg, "value"):  # a nested task, or a DataNode holding the steps
            if found := chain_labels(arg):
                return found
    return ()


def chain_priorities(caught: GraphCaught) -> dict[tuple[str, ...], set[int]]:
    """Each chain's tasks (their kind and the last part of their ParDos' labels) and their priorities."""
    by_chain: dict[tuple[str, ...], set[int]] = collections.defaultdict(set)
    for key, task in caught.graph.items():
        kind = task_kind(key)
        if kind in ("run_steps", "shuffle-transfer", "p2p-groups"):
            labels = (label.rsplit("/", 1)[-1] for label in chain_labels(task))
            by_chain[(kind, *labels)].add(caught.priorities.get(key, 0))
    return by_chain


def test_a_transfer_and_every_reader_of_a_shared_partition_run_first(dask_cluster) -> None:  # type: ignore[no-untyped-def]
    """A partition stays in a worker's memory until its last reader has run: the readers of a
    partition that several tasks read (here each tag's split of a multi-output ParDo) and a
    grouping's transfers (which move their partition to the shuffle's disk) get a priority above
    Dask's default, so a worker runs them before it makes more partitions. A chain whose input it
    alone reads, and a grouping's unpack tasks, keep Dask's own order."""
    import distributed

    from lemur_corpus.pipelines.dask_p2p import BRANCH_END_PRIORITY, SHARED_READER_PRIORITY, TRANSFER_PRIORITY

    assert TRANSFER_PRIORITY > 0 and SHARED_READER_PRIORITY > 0
    with beam.Pipeline(options=options(dask_cluster)) as p:
        outputs = multi_output(p)
        assert_that(outputs["grouped"], equal_to([(k, [n for n in range(0, 64, 2) if n % 3 == k]) for k in range(3)]),
                    label="CheckGrouped")
        assert_that(outputs["squares"], equal_to([n * n for n in range(1, 64, 2)]), label="CheckSquares")
    with mock.patch.object(distributed.Client, "compute", catch_graph), pytest.raises(GraphCaught) as caught:
        with beam.Pipeline(options=options(dask_cluster)) as p:
            multi_output(p)
    by_chain = chain_priorities(caught.value)
    assert by_chain[("run_steps", "Run")] == {0}  # Halves/Run: Create's output is read by it alone
    assert by_chain[("run_steps", "Only_odd", "Square")] == {BRANCH_END_PRIORITY}  # nothing reads the squares
    assert by_chain[("shuffle-transfer", "Only_even", "KeyBy3", "ReifyWindows")] == {TRANSFER_PRIORITY}
    assert by_chain[("p2p-groups", "Sorted")] == {0}
    assert len(by_chain) == 4


def test_a_create_read_alone_is_held_in_its_readers_tasks(dask_cluster) -> None:  # type: ignore[no-untyped-def]
    """Where a chain alone reads a `Create` (the build's read), the chain's tasks hold the
    `Create`'s elements: no `from_sequence` tasks, and the chain's tasks depend on nothing, so
    distributed queues them as root tasks (a worker gets another only when it has few left to run)
    instead of sending every read to the workers at once; so too after a `Reshuffle` (a
    pass-through on Dask), as the build reads. A `Create` read by two chains keeps its own tasks
    (64), as does one read as a side input (`Offset`: 1). An empty `Create` gives one empty
    partition, as Dask's `from_sequence` does."""
    import distributed

    from lemur_corpus.pipelines.outputs import MultiOutputParDo

    with beam.Pipeline(options=options(dask_cluster)) as p:
        assert_that(multi_output(p)["squares"], equal_to([n * n for n in range(1, 64, 2)]), label="CheckSquares")
        empty = p | "Empty" >> beam.Create([]) | "EmptyHalves" >> MultiOutputParDo(Halves(), "odd", main="even")
        assert_that(empty["even"], equal_to([]), label="CheckEmptyEven")
        assert_that(empty["odd"], equal_to([]), label="CheckEmptyOdd")

    with mock.patch.object(distributed.Client, "compute", catch_graph), pytest.raises(GraphCaught) as caught:
        with beam.Pipeline(options=options(dask_cluster)) as p:
            multi_output(p)
    reads = [task for key, task in caught.value.graph.items()
             if task_kind(key) == "run_steps" and chain_labels(task)[-1].endswith("/Run")]
    assert len(reads) == 64 and all(not task.dependencies for task in reads)
    assert not [key for key in caught.value.graph if task_kind(key) == "from_sequence"]
    with mock.patch.object(distributed.Client, "compute", catch_graph), pytest.raises(GraphCaught) as caught:
        with beam.Pipeline(options=options(dask_cluster)) as p:  # the build's read: Create, Reshuffle, its reader
            spread = p | "Create" >> beam.Create(list(range(64)), reshuffle=False) | "Spread" >> beam.Reshuffle()
            halves = spread | "Halves" >> MultiOutputParDo(Halves(), "odd", main="even")
            # a P2P grouping, so the graph runs unoptimized, as the build's does
            halves["odd"] | "KeyBy3" >> beam.Map(lambda n: (n % 3, n)) | "Group" >> beam.GroupByKey()
            halves["even"] | "Negate" >> beam.Map(lambda n: -n)
    reads = [task for key, task in caught.value.graph.items() if chain_labels(task) == ("Halves/Run",)]
    assert len(reads) == 64 and all(not task.dependencies for task in reads)
    with mock.patch.object(distributed.Client, "compute", catch_graph), pytest.raises(GraphCaught) as caught:
        with beam.Pipeline(options=options(dask_cluster)) as p:
            pipeline(p)
    assert sum(task_kind(key) == "from_sequence" for key in caught.value.graph) == 64 + 1


def shifted_odd_numbers(p: beam.Pipeline) -> beam.PCollection:
    """The odd numbers, each plus the sum of the even ones, grouped by n mod 3: a reader of a
    multi-output ParDo's tag followed by a ParDo with a side input (the sampled tokenizer's rest,
    waiting for the pools), and a grouping (so the graph runs unoptimized, as the build's does)."""
    from lemur_corpus.pipelines.outputs import MultiOutputParDo

    halves = p | "Create" >> beam.Create(list(range(64))) | "Halves" >> MultiOutputParDo(Halves(), "odd", main="even")
    total = halves["even"] | "Sum" >> beam.CombineGlobally(sum)
    return (halves["odd"]
            | "Shift" >> beam.Map(lambda n, plus: n + plus, plus=beam.pvalue.AsSingleton(total))
            | "KeyBy3" >> beam.Map(lambda n: (n % 3, n))
            | "Group" >> beam.GroupByKey()
            | "Sorted" >> beam.MapTuple(lambda k, ns: (k, sorted(ns))))


def test_a_reader_of_a_shared_partition_does_not_wait_for_a_side_input(dask_cluster) -> None:  # type: ignore[no-untyped-def]
    """A chain reading a multi-output ParDo's tag is not extended by a ParDo that has a side input:
    fused, its tasks would wait for the side input, and the ParDo's whole partition (every tag's
    elements) with them. The tag's reader runs first on its own and the ParDo after it (here in the
    grouping's transfers), so the shared partition goes once each of its readers has run."""
    import distributed

    from lemur_corpus.pipelines.dask_p2p import BRANCH_END_PRIORITY, TRANSFER_PRIORITY

    evens = sum(range(0, 64, 2))
    shifted = [n + evens for n in range(1, 64, 2)]
    with beam.Pipeline(options=options(dask_cluster)) as p:
        assert_that(shifted_odd_numbers(p), equal_to([(k, [n for n in shifted if n % 3 == k]) for k in range(3)]))
    with mock.patch.object(distributed.Client, "compute", catch_graph), pytest.raises(GraphCaught) as caught:
        with beam.Pipeline(options=options(dask_cluster)) as p:
            shifted_odd_numbers(p)
    by_chain = chain_priorities(caught.value)
    assert by_chain[("run_steps", "Only_odd")] == {BRANCH_END_PRIORITY}  # it only selects a tag
    assert by_chain[("shuffle-transfer", "Shift", "KeyBy3", "ReifyWindows")] == {TRANSFER_PRIORITY}
    assert not [chain for chain in by_chain if "Only_odd" in chain and "Shift" in chain]


def fanned_out(p: beam.Pipeline) -> dict[str, beam.PCollection]:
    """A multi-output ParDo whose even tag two transforms read, and whose odd tag is squared for two
    (one of them a P2P grouping, so the graph runs unoptimized, as the build's does)."""
    from lemur_corpus.pipelines.outputs import MultiOutputParDo

    halves = p | "Create" >> beam.Create(list(range(64))) | "Halves" >> MultiOutputParDo(Halves(), "odd", main="even")
    squares = halves["odd"] | "Square" >> beam.Map(lambda n: n * n)
    return {"even_sum": halves["even"] | "SumEven" >> beam.CombineGlobally(sum),
            "even_by_3": (halves["even"] | "KeyBy3" >> beam.Map(lambda n: (n % 3, n)) | "Group" >> beam.GroupByKey()
                          | "Sorted" >> beam.MapTuple(lambda k, ns: (k, sorted(ns)))),
            "square_sum": squares | "SumSquares" >> beam.CombineGlobally(sum),
            "square_max": squares | "MaxSquare" >> beam.CombineGlobally(max)}


def test_the_cheap_readers_of_a_shared_partition_run_before_those_that_fan_out(dask_cluster) -> None:  # type: ignore[no-untyped-def]
    """Of the readers of a shared partition, those that only select a tag's elements, or whose
    output has one reader at most, run first (`BRANCH_END_PRIORITY`); a chain whose output several
    transforms read (the next stage's partition) runs after them (`SHARED_READER_PRIORITY`). So the
    shared partition goes as soon as its cheap readers have run, instead of waiting, in
    `dask.order`'s order, behind the next stage (the build's tallies and drops did). The results
    are those of the pipeline whatever the order."""
    import distributed

    from lemur_corpus.pipelines.dask_p2p import BRANCH_END_PRIORITY, SHARED_READER_PRIORITY, TRANSFER_PRIORITY

    assert TRANSFER_PRIORITY >= BRANCH_END_PRIORITY > SHARED_READER_PRIORITY  # a transfer ends a branch too
    with beam.Pipeline(options=options(dask_cluster)) as p:
        outputs = fanned_out(p)
        odd_squares = [n * n for n in range(1, 64, 2)]
        for name, value in {"even_sum": [sum(range(0, 64, 2))], "square_sum": [sum(odd_squares)],
                            "square_max": [max(odd_squares)],
                            "even_by_3": [(k, [n for n in range(0, 64, 2) if n % 3 == k]) for k in range(3)]}.items():
            assert_that(outputs[name], equal_to(value), label=f"Check_{name}")
    with mock.patch.object(distributed.Client, "compute", catch_graph), pytest.raises(GraphCaught) as caught:
        with beam.Pipeline(options=options(dask_cluster)) as p:
            fanned_out(p)
    by_chain = chain_priorities(caught.value)
    assert by_chain[("run_steps", "Only_even")] == {BRANCH_END_PRIORITY}  # read twice, but only selects
    assert by_chain[("run_steps", "Only_odd", "Square")] == {SHARED_READER_PRIORITY}  # squares read twice
    assert by_chain[("shuffle-transfer", "KeyBy3", "ReifyWindows")] == {TRANSFER_PRIORITY}  # reads Only_even
    graph = caught.value.graph
    squares = {key for key, task in graph.items() if chain_labels(task) == ("Halves/Only_odd", "Square")}
    square_readers = {key for key, task in graph.items() if squares & set(getattr(task, "dependencies", ()))}
    assert {chain_labels(graph[key])[0].split("/")[0] for key in square_readers} == {"SumSquares", "MaxSquare"}
    assert {caught.value.priorities.get(key, 0) for key in square_readers} == {BRANCH_END_PRIORITY}  # one reader each


def worker_profiles(_: object) -> t.Iterator[bool]:
    """Whether the Dask worker running this element runs distributed's statistical profiler."""
    import distributed

    yield "profile" in distributed.get_worker().periodic_callbacks


def test_the_runners_own_cluster_runs_no_profiler() -> None:
    """The LocalCluster the runner starts (no scheduler named) runs its workers without distributed's
    profiler, which keeps a profile tree per second of the run (`dask_runner.LOCAL_CLUSTER_CONFIG`)."""
    with beam.Pipeline(options=PipelineOptions([f"--runner={RUNNER_ALIASES['DaskRunner']}", "--dask_workers=1"])) as p:
        profiled = p | beam.Create([1, 2]) | beam.FlatMap(worker_profiles)
        assert_that(profiled, equal_to([False, False]))


def worker_drops_task_failures(_: object) -> t.Iterator[bool]:
    import logging

    from lemur_corpus.pipelines.interrupts import TASK_FAILURE_LOGS, DropMessages

    for name, prefix in TASK_FAILURE_LOGS:
        yield any(isinstance(f, DropMessages) and f.prefix == prefix for f in logging.getLogger(name).filters)


def test_the_runners_own_cluster_drops_the_workers_failed_task_logs() -> None:
    """A worker of the runner's own LocalCluster drops distributed's records of a failed task
    ("Compute Failed", a traceback in the user's terminal; the driver reports the failure itself),
    of a cancelled one and of a heartbeat lost as the cluster closes, and no other record."""
    import logging

    from lemur_corpus.pipelines.interrupts import TASK_FAILURE_LOGS, DropMessages, quiet_task_failures

    with beam.Pipeline(options=PipelineOptions([f"--runner={RUNNER_ALIASES['DaskRunner']}", "--dask_workers=1"])) as p:
        dropping = p | beam.Create([1, 2]) | beam.FlatMap(worker_drops_task_failures)
        assert_that(dropping, equal_to([True] * 2 * len(TASK_FAILURE_LOGS)))
    loggers = {name: logging.getLogger(name) for name, _ in TASK_FAILURE_LOGS}
    before = {name: list(logger.filters) for name, logger in loggers.items()}
    try:
        quiet_task_failures()
        quiet_task_failures()  # once is enough
        for name, prefix in TASK_FAILURE_LOGS:
            logger = loggers[name]
            added = [f for f in logger.filters if f not in before[name] and getattr(f, "prefix", None) == prefix]
            assert len(added) == 1 and isinstance(added[0], DropMessages)

            def record(msg: str, name: str = name) -> logging.LogRecord:
                return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, None, None)

            assert not logger.filter(record(prefix + " %s\nTraceback: %r\n"))
            assert logger.filter(record("Worker stream died during communication"))
    finally:
        for name, logger in loggers.items():
            for f in logger.filters[len(before[name]):]:
                logger.removeFilter(f)


def test_the_benchmarks_cluster_takes_the_runners_worker_settings() -> None:
    """`benchmarks/dask_cluster.py` starts its `dask worker`s with the settings of the runner's own
    LocalCluster, as environment variables that Dask reads back to the same values."""
    import dask

    from benchmarks.dask_cluster import PROFILER_ENV
    from lemur_corpus.pipelines.dask_runner import LOCAL_CLUSTER_CONFIG

    read_back = dask.config.collect_env(PROFILER_ENV)
    for key, value in LOCAL_CLUSTER_CONFIG.items():
        assert dask.config.get(key, config=read_back) == value
    assert PROFILER_ENV == {"DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False"}


def test_the_local_clusters_workers_start_with_ctrl_c_ignored() -> None:
    """Ctrl-C reaches every process of the terminal's group: the LocalCluster's worker processes,
    started inside `sigint_ignored`, inherit SIGINT ignored (each printed a KeyboardInterrupt
    traceback before), while the driver's own handler is back after the block."""
    import logging
    import signal
    import subprocess
    import sys

    from lemur_corpus.pipelines.interrupts import quiet_logger, sigint_ignored

    before = signal.getsignal(signal.SIGINT)
    probe = "import signal; print(signal.getsignal(signal.SIGINT) == signal.SIG_IGN)"
    with sigint_ignored():
        inside = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    after = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert inside.stdout.strip() == "True" and after.stdout.strip() == "False"
    assert signal.getsignal(signal.SIGINT) is before
    logger = logging.getLogger("distributed.scheduler")
    with quiet_logger("distributed"):
        assert not logger.isEnabledFor(logging.CRITICAL)
    assert logger.isEnabledFor(logging.ERROR)


class CollectorThresholds(beam.DoFn):
    """The worker's collector thresholds, as each element sees them."""

    def process(self, element: int) -> t.Iterator[tuple[int, ...]]:
        import gc

        yield gc.get_threshold()


def test_the_workers_collect_garbage_at_the_builds_thresholds_while_it_runs(dask_cluster) -> None:  # type: ignore[no-untyped-def]
    """`dask_worker_gc`: every task of the run sees `GC_THRESHOLDS`; once the run is over, each
    worker of the user's cluster has the thresholds it had before."""
    import gc

    from distributed import Client

    from lemur_corpus.pipelines.worker_memory import GC_THRESHOLDS

    assert GC_THRESHOLDS != gc.get_threshold()  # the test's own process, as the workers start: CPython's
    with Client(dask_cluster.scheduler_address) as client:
        before = client.run(gc.get_threshold)
        with beam.Pipeline(options=options(dask_cluster)) as p:
            seen = p | beam.Create(range(64)) | beam.ParDo(CollectorThresholds()) | beam.Distinct()
            assert_that(seen, equal_to([GC_THRESHOLDS]))
        assert client.run(gc.get_threshold) == before
        assert set(before.values()) == {gc.get_threshold()}


@pytest.mark.parametrize("blobs", [True, False])
def test_a_p2p_grouping_counts_what_it_handed_to_its_shuffle(dask_cluster, blobs: bool) -> None:  # type: ignore[no-untyped-def]
    """Every item a grouping's transfer tasks hand over is counted once, under the grouping's label,
    with the bytes of the tables they went in (the manifest's `run.groupings`)."""
    from lemur_corpus.pipelines import dask_runner
    from lemur_corpus.pipelines.profile import GROUPING_BYTES, GROUPING_ITEMS, groupings_from_metrics

    with mock.patch.object(dask_runner, "P2P_BLOBS", blobs):
        p = beam.Pipeline(options=options(dask_cluster))
        grouped_flatten(p)
        result = p.run()
        result.wait_until_finish()
    moved = groupings_from_metrics(result)
    assert list(moved) == ["Group/GroupByKey"]  # the primitive GroupByKey inside Beam's
    assert moved["Group/GroupByKey"][GROUPING_ITEMS] == len(FLATTENED)
    assert moved["Group/GroupByKey"][GROUPING_BYTES] > 8 * len(FLATTENED)  # at least each item's key hash
