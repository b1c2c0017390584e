"""A grouping of bag partitions through Dask's P2P shuffle, in two tasks per partition.

Going through `dask.dataframe` (`Bag` -> `from_delayed` -> `shuffle(shuffle_method="p2p")` ->
`to_delayed` -> `Bag`) costs eight tasks per partition per grouping: the table made from each
partition, aliases between the collections, the partition index column, the transfer, the unpack
and the groups made from each output table. A build has close to forty groupings, most of them
small (the components' rounds carry nothing once the graph has settled), and each task costs the
scheduler and the workers its bookkeeping, messages and moved results whatever it carries. Here the
grouping is written as the tasks of distributed's own P2P shuffle, nothing else:

    input partition i ──▶ shuffle-transfer-<id> i (the ParDos that make the partition when the
                          grouping alone reads them, their outputs handed to the worker's shuffle
                          as they are made, `ITEMS_PER_PIECE` at a time: `transfer`, `hand_over`;
                          each piece a table with a row per part of each output partition, its
                          items pickled in one blob: `partition_blobs`)
    all transfers     ──▶ shuffle-barrier-<id> (distributed's barrier, with the shuffle's spec)
    barrier           ──▶ p2p-groups-<id> j (the output table, grouped by key encoding one part
                          after the other, `SUBGROUPS`, then the ParDos fused after the grouping:
                          `unpacked_steps`)

Where the ParDos after a grouping feed another grouping and nothing else, that grouping's transfer
task j is this one's unpack task j too (`unpacked_transfer`): the ParDos' outputs go to the next
shuffle as they are made instead of waiting whole, as a task's result, for a transfer task.

These are distributed's internal tasks and spec (`distributed.shuffle`), as `dask.dataframe`'s P2P
layer writes them; `available()` says whether this distributed has them, and the runner goes through
`dask.dataframe` where it does not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import pickle
import typing as t

import apache_beam
import xxhash
from apache_beam.utils.windowed_value import WindowedValue

from lemur_corpus.pipelines.dask_bundles import BundleStep, FusedSteps, run_steps, stream_steps
from lemur_corpus.pipelines.dask_metrics import grouping_moved
from lemur_corpus.pipelines.outputs import OnlyTagFn

TRANSFER_PRIORITY = 2
"""Dask priority of a grouping's transfer tasks, as high as the cheap readers of a shared partition
(`BRANCH_END_PRIORITY`) and above every other task: a worker with a transfer ready runs it first.
A transfer hands its input partition to the shuffle, which keeps it on
the worker's disk, so the partition leaves memory as soon as it is made; at the default priority a
worker ran the other ready tasks first (a grouping's unpack tasks, all ready at its barrier, or the
next read), and the partitions of a whole stage waited in memory for their transfers: Verify's at
64,000 documents, 201 of the 268 MiB of task results held at the fullest poll
(`benchmarks/scale.py --runner dask-cluster`). 0: Dask's own order."""

SHARED_READER_PRIORITY = 1
"""Dask priority of a chain that reads a partition other tasks read too, above every other task's
(0). A partition stays in memory until its last reader has run, so each of its readers runs as soon
as it is ready: a multi-output ParDo's partition (every tag's elements) was held for its smallest
tag's reader, the drop counts that wait for the accounting's Flatten at the end of the build,
while the documents had gone on. 0: Dask's own order."""

BRANCH_END_PRIORITY = 2
"""Dask priority of a chain that reads a shared partition and costs little or ends a branch: it
only selects a tag's elements (`outputs.OnlyTagFn`), or its output has at most one reader (a
tally, a combine's input). As high as `TRANSFER_PRIORITY` (a transfer ends a branch too, and
moves its partition out of memory), above `SHARED_READER_PRIORITY`, so a partition's cheap readers run
before the readers that make the next stage's partitions: at one priority they ran in `dask.order`'s
order, which puts the tallies and the drops late (they feed the accounting at the end of the
build), and the read's, normalize's and filter's partitions of every file in flight waited in
memory for them while the filter ran on the next partition (`benchmarks/scale.py --runner
dask-cluster --docs 250000 1000000 --docs-per-file 32000`: task results held at the fullest poll at
250,000 documents 1,581 → 620 MiB, the read's stages gone from it). 0: as `SHARED_READER_PRIORITY`."""

PARTITION = "_partitions"
"""The column of each row's output partition, as distributed's `DataFrameShuffleSpec` reads it."""


def available() -> bool:
    """Whether this distributed has the P2P shuffle tasks and spec `P2PGrouping` writes."""
    try:
        from dask._task_spec import Task, TaskRef  # noqa: F401
        from distributed.shuffle._core import P2PBarrierTask, ShuffleId, barrier_key, p2p_barrier  # noqa: F401
        from distributed.shuffle._shuffle import DataFrameShuffleSpec, shuffle_transfer, shuffle_unpack  # noqa: F401
    except ImportError:
        return False
    fields = getattr(DataFrameShuffleSpec, "__dataclass_fields__", {})
    return {"id", "npartitions", "column", "meta", "parts_out", "disk", "drop_column"} <= set(fields)


_KEY_CODER = apache_beam.coders.coders.FastPrimitivesCoder().as_deterministic_coder("GroupByKey")


def encoded_key(key: t.Any) -> bytes:
    """A key's deterministic Beam encoding, the bytes Beam's portable runners group by. A key Beam
    cannot encode deterministically is a TypeError: Dask's own hash would not do either (two equal
    frozensets can tokenize differently), and a key hashed two ways splits its group silently."""
    try:
        return _KEY_CODER.encode(key)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"GroupByKey on Dask: a key of type {type(key).__name__} has no deterministic "
                        f"encoding, so equal keys could land in different groups ({exc})") from None


def key_hash(key: t.Any) -> int:
    """The same number for equal keys in every process (`dask_runner`'s module docstring, 7): xxh64
    of the key's deterministic encoding (`encoded_key`)."""
    return xxhash.xxh64_intdigest(encoded_key(key))


def grouped(item: tuple[t.Any, list[t.Any]]) -> tuple[t.Any, list[t.Any]]:
    """(key, [(key, value) or windowed value]) -> (key, [value])."""
    key, elements = item
    return key, [element.value if isinstance(element, WindowedValue) else element for _, element in elements]


def groups_by_encoding(encoded_items: t.Iterable[tuple[bytes, t.Any]]) -> list[tuple[t.Any, list[t.Any]]]:
    """(key encoding, item) pairs -> (key, [values]) per encoding, in the order they came."""
    groups: dict[bytes, list[t.Any]] = {}
    for encoded, item in encoded_items:
        groups.setdefault(encoded, []).append(item)
    return [grouped((items[0][0], items)) for items in groups.values()]


def _binary() -> t.Any:
    import pandas as pd
    import pyarrow as pa

    return pd.ArrowDtype(pa.large_binary())  # large: a partition's items may pass 2 GB


def shuffle_frame(items: t.Iterable[tuple[t.Any, t.Any]], npartitions: int | None = None) -> t.Any:
    """A partition's (key, value) items as the table a P2P shuffle moves: each item's key hash, its
    key's deterministic encoding (what it is grouped by) and the pickled item; with `npartitions`,
    also the output partition of each row (the hash modulo `npartitions`)."""
    import numpy as np
    import pandas as pd

    hashes, keys, pickled = [], [], []
    for item in items:
        encoded = encoded_key(item[0])
        hashes.append(xxhash.xxh64_intdigest(encoded))
        keys.append(encoded)
        pickled.append(pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL))
    hash_column = pd.Series(hashes, dtype="uint64")
    frame = {"hash": hash_column, "key": pd.Series(keys, dtype=_binary()),
             "item": pd.Series(pickled, dtype=_binary())}
    if npartitions is not None:
        frame[PARTITION] = pd.Series(hash_column.to_numpy() % np.uint64(npartitions), dtype="int64")
    return pd.DataFrame(frame)


def groups_of_frame(frame: t.Any) -> list[tuple[t.Any, list[t.Any]]]:
    """One shuffled partition's items grouped by their key's encoding: (key, [values])."""
    return groups_by_encoding(zip(frame["key"], map(pickle.loads, frame["item"]), strict=True))


BLOB = "blob"
SUBGROUP = "subgroup"

SUBGROUPS = 8
"""Parts of each output partition whose items an unpack task groups and hands on one after the
other (a key's part: its hash divided by the partitions, modulo this). The unpack grouped a whole
partition at once: every item unpickled, beside the received table and distributed's sorted copy
of it made a pandas table; now it holds the received table and one part's items. A grouping's
partitions grow with what it carries per document, and near dedup's verification groups carry a
payload copy per candidate pair, more per document the larger the corpus's near-duplicate
components: at a million documents of `benchmarks/scale.py --runner dask-cluster` they raised each
worker by 191-196 MiB (`Verify`) before, by 70 MiB on one worker and less on the other with the
parts and each worker's collector tuned (`worker_memory.GC_THRESHOLDS`; one run each). 1: the whole
partition at once (`benchmarks/dask_runner_speed.py --baseline subgroups`)."""


def partition_blobs(items: t.Iterable[tuple[t.Any, t.Any]], npartitions: int, subgroups: int = 1) -> t.Any:
    """A partition's (key, value) items as the table a P2P shuffle moves, a row per output partition
    they go to (the key hash modulo `npartitions`) and part of it (`SUBGROUPS`): the partition, the
    part and its (key encoding, item) pairs pickled in one blob. A row per item (`shuffle_frame`)
    cost a pickle call, a Python bytes object and an Arrow value per item on each side, and pandas'
    boxing of each row at unpack; here that is a call per output partition's part
    (`benchmarks/dask_runner_speed.py --baseline item-rows`). An Arrow table, not pandas:
    `dask_blob_shuffle` shards it by worker without pandas."""
    import pyarrow as pa

    pairs: dict[tuple[int, int], list[tuple[bytes, tuple[t.Any, t.Any]]]] = {}
    for item in items:
        encoded = encoded_key(item[0])
        rest, partition = divmod(xxhash.xxh64_intdigest(encoded), npartitions)
        pairs.setdefault((partition, rest % subgroups), []).append((encoded, item))
    rows = sorted(pairs)
    blobs = [pickle.dumps(pairs.pop(row), protocol=pickle.HIGHEST_PROTOCOL) for row in rows]
    return pa.table({PARTITION: pa.array([row[0] for row in rows], pa.int64()),
                     SUBGROUP: pa.array([row[1] for row in rows], pa.int32()),
                     BLOB: pa.array(blobs, pa.large_binary())})


def blob_meta(npartitions: int) -> t.Any:
    """The empty pandas table of `partition_blobs`' columns: what distributed's spec wants."""
    import pandas as pd

    return pd.DataFrame({PARTITION: pd.Series([], dtype="int64"), SUBGROUP: pd.Series([], dtype="int32"),
                         BLOB: pd.Series([], dtype=_binary())})


def item_rows_meta(npartitions: int) -> t.Any:
    return shuffle_frame([], npartitions)


def item_rows(items: t.Iterable[tuple[t.Any, t.Any]], npartitions: int, subgroups: int = 1) -> t.Any:
    """`shuffle_frame` as a `Layout.table`: a row per item, no parts."""
    return shuffle_frame(items, npartitions)


def groups_of_blobs(table: t.Any) -> t.Iterator[tuple[t.Any, list[t.Any]]]:
    """One shuffled partition's blobs (`partition_blobs`, as `dask_blob_shuffle` delivers them: an
    Arrow table, its rows in the order the shuffle received them, with each row's input piece),
    their items grouped by their key's encoding: (key, [values]), one part (`SUBGROUPS`) after the
    other, each key's values in the order of the pieces. A part's items are unpickled only when the
    groups before it have been read."""
    import numpy as np

    if table.num_rows == 0:
        return
    subgroups = table[SUBGROUP].to_numpy()
    if INPUT_PIECE in table.column_names:  # a stable sort: a piece's rows keep their order
        order = np.argsort(table[INPUT_PIECE].to_numpy(), kind="stable")
    else:
        order = np.arange(table.num_rows)
    blobs = table[BLOB]
    for subgroup in np.unique(subgroups):
        rows = blobs.take(order[subgroups[order] == subgroup])
        yield from groups_by_encoding(
            pair for chunk in rows.chunks for blob in chunk for pair in pickle.loads(blob.as_buffer()))


INPUT_PIECE = "__input_partition_id__"
"""The column distributed adds to what it receives: the input piece each row came from
(`distributed.shuffle._arrow._INPUT_PARTITION_ID_COLUMN`); an output partition's rows are read in
its order, as distributed's own unpack sorts them."""


@dataclasses.dataclass(frozen=True)
class Layout:
    """How a P2P grouping's items travel: the table a transfer task makes of its partition (with the
    output partition column) and how an unpack task groups the table it receives."""

    table: t.Callable[[t.Iterable[tuple[t.Any, t.Any]], int, int], t.Any]
    """A piece's items as a table, for a number of partitions and of parts of each (`SUBGROUPS`)."""
    groups: t.Callable[[t.Any], t.Iterable[tuple[t.Any, list[t.Any]]]]
    meta: t.Callable[[int], t.Any]
    """The empty output table (pandas), as distributed's spec wants it, for a number of partitions."""
    arrow: bool = False
    """Whether `table` makes Arrow tables (sharded by `dask_blob_shuffle`); else pandas ones."""


BLOBS = Layout(partition_blobs, groups_of_blobs, blob_meta, arrow=True)
ITEM_ROWS = Layout(item_rows, groups_of_frame, item_rows_meta)


ITEMS_PER_PIECE = 8_192
"""Items a transfer task hands to the shuffle at a time: a partition, or what the fused ParDos make
of it, goes to the shuffle piece by piece as they make it (`stream_steps`), so a task holds one
piece's items and table, not its whole output and that output's table too. dedup's verification
pairs are made in the unpack tasks of the join before them, each payload copied to every later
document it is paired with; a million-document build's worker peaks were reached while such a task
held them all. The size trades a piece's memory (items of a few KB at most: a document's shingles)
against a shuffle message and table per piece."""


TRANSFER_FROM_UNPACK = True
"""Whether a grouping that reads a chain run on another grouping's output partitions transfers
them from that grouping's unpack tasks (`unpacked_transfer`) instead of from the chain's tasks'
results, each held whole until its transfer has run (`benchmarks/dask_runner_speed.py --baseline
pieces`); read when the driver makes the graph."""


def piece_bits(ntransfers: int) -> int:
    """The low bits of a piece's input partition id that number the pieces of one transfer.
    distributed keeps one table per input partition id (a retried task's second copy is dropped)
    and orders an output partition's rows by that id, a uint32: piece k of transfer i is i in the
    high bits, k in the bits the transfers leave free, so the rows keep the order of one piece
    after the other."""
    return 32 - max(1, (ntransfers - 1).bit_length())


@dataclasses.dataclass(frozen=True)
class Target:
    """Where a grouping's transfer tasks hand their items: the shuffle, its transfer tasks and
    output partitions, how items travel, and the items per piece (`ITEMS_PER_PIECE` when the driver
    made the grouping, carried to the workers with the tasks)."""

    shuffle_id: str
    ntransfers: int
    npartitions: int
    layout: Layout
    piece_items: int
    subgroups: int = 1
    run: str = ""
    """The build's run id and the grouping's transform label: where the items and bytes each piece
    hands over are counted (`dask_metrics.grouping_moved`); no run id, nothing counted."""
    label: str = ""


def hand_over(items: t.Iterable[tuple[t.Any, t.Any]], target: Target, partition: int) -> int:
    """One input partition's items to this worker's part of the shuffle, `target.piece_items` at a
    time (at least one piece, so an empty partition reaches the barrier too; once the piece
    numbers are used up, the last piece takes the rest)."""
    from distributed.shuffle._shuffle import shuffle_transfer

    bits = piece_bits(target.ntransfers)
    last = (1 << bits) - 1
    piece: list[tuple[t.Any, t.Any]] = []
    number, run_id = 0, None
    moved = [0, 0]  # items, table bytes

    def table_of(piece: list[tuple[t.Any, t.Any]]) -> t.Any:
        table = target.layout.table(piece, target.npartitions, target.subgroups)
        moved[0] += len(piece)
        moved[1] += table.nbytes if target.layout.arrow else int(table.memory_usage(deep=True).sum())
        return table

    for item in items:
        piece.append(item)
        if len(piece) >= target.piece_items and number < last:
            table = table_of(piece)
            piece = []  # the items go with the table: only the table is held while it is handed on
            run_id = shuffle_transfer(table, target.shuffle_id, (partition << bits) | number)  # type: ignore[arg-type]  # a ShuffleId is a str
            number += 1
    if piece or run_id is None:
        table = table_of(piece)
        run_id = shuffle_transfer(table, target.shuffle_id, (partition << bits) | number)  # type: ignore[arg-type]  # as above
    if target.run:
        grouping_moved(target.run, target.label, *moved)
    return run_id


def drained(items: t.Iterable[t.Any]) -> t.Iterator[t.Any]:
    """A list's items in order, each let go of by the list as it is read (the list ends empty): an
    unpacked partition's groups leave memory as the ParDos after the grouping go through them. Any
    other iterable (`groups_of_blobs`' parts) is read as it is."""
    if not isinstance(items, list):
        yield from items
        return
    items.reverse()
    while items:
        yield items.pop()


def transfer(items: t.Iterable[tuple[t.Any, t.Any]], target: Target, partition: int, fused: FusedSteps | None = None,
             *side_values: list[t.Any]) -> int:
    """One input partition, through the fused ParDos before the grouping if any, handed to this
    worker's part of the shuffle as they make it (the transfer task)."""
    if fused is not None:
        items = stream_steps(items, fused, *side_values)
    return hand_over(items, target, partition)


def unpacked_transfer(source_id: str, source_partition: int, barrier_run: int, source_layout: Layout,
                      target: Target, partition: int, fused: FusedSteps, *side_values: list[t.Any]) -> int:
    """One output partition of another grouping (its unpack, as `unpacked_steps`: first, so on the
    wrong worker distributed moves the task before anything runs), through the ParDos fused after
    it, handed to this grouping's shuffle as they make it: a transfer task that is that grouping's
    unpack task too, so what the ParDos make is never held whole."""
    from distributed.shuffle._shuffle import shuffle_unpack

    groups = source_layout.groups(shuffle_unpack(source_id, source_partition, barrier_run))  # type: ignore[arg-type]  # a ShuffleId is a str
    return hand_over(stream_steps(drained(groups), fused, *side_values), target, partition)


def unpacked_steps(shuffle_id: str, partition: int, barrier_run: int, layout: Layout, fused: FusedSteps | None,
                   *side_values: list[t.Any]) -> list[t.Any]:
    """One output partition: its table from the shuffle (first: on the wrong worker distributed
    moves the task before anything runs), grouped, then through the fused ParDos, if any."""
    from distributed.shuffle._shuffle import shuffle_unpack

    groups = layout.groups(shuffle_unpack(shuffle_id, partition, barrier_run))  # type: ignore[arg-type]  # a ShuffleId is a str
    return run_steps(drained(groups), fused, *side_values) if fused is not None else list(groups)


@dataclasses.dataclass(frozen=True)
class Source:
    """Partitions a grouping's transfer tasks read: `bag`'s, or the output partitions of the
    grouping `unpacked` (each unpacked in the transfer task itself), each first through `fused`
    (with its side inputs' `values`) if any."""

    bag: t.Any
    fused: FusedSteps | None = None
    values: tuple[t.Any, ...] = ()
    unpacked: P2PGrouping | None = None

    @property
    def npartitions(self) -> int:
        return self.unpacked.npartitions if self.unpacked is not None else self.bag.npartitions

    def then(self, chain: Chain) -> Source:
        """This source, then the chain's ParDos."""
        steps = chain.fused.steps if self.fused is None else (*self.fused.steps, *chain.fused.steps)
        return dataclasses.replace(self, fused=FusedSteps(chain.fused.run, steps, chain.fused.trim),
                                   values=(*self.values, *chain.values))

    def transfer_task(self, key: t.Any, input_partition: int, target: Target, number: int) -> t.Any:
        """The transfer task of this source's partition `input_partition`, the grouping's `number`th."""
        from dask._task_spec import Task, TaskRef

        steps = [] if self.fused is None else [self.fused]
        sides = [TaskRef(value.key) for value in self.values]
        if self.unpacked is None:
            return Task(key, transfer, TaskRef((self.bag.name, input_partition)), target, number, *steps, *sides)
        other = self.unpacked
        return Task(key, unpacked_transfer, other.token, input_partition, TaskRef(other.barrier.key), other.layout,
                    target, number, *steps, *sides)

    def dependencies(self) -> list[t.Any]:
        """The collections its transfer tasks read: the bag or the other grouping's barrier, and the side inputs."""
        return [self.bag if self.unpacked is None else self.unpacked.barrier, *self.values]


@dataclasses.dataclass(frozen=True)
class Chain:
    """ParDos fused into one task per partition, and where they run: on the partitions of `base`
    (a bag), or in the unpack tasks of `grouping`."""

    fused: FusedSteps
    values: list[t.Any]
    """The side inputs' materialized values (Delayed), in the order of the steps' side inputs."""
    base: t.Any = None
    grouping: P2PGrouping | None = None
    flattened: tuple[Source, ...] = ()
    """When `base` is a Flatten that this chain alone reads: the Flatten's inputs (each with the
    ParDos that make it, where the Flatten alone reads them). A grouping that reads this chain
    alone transfers each of them through the chain, instead of waiting for the Flatten's tasks."""

    priority: int = 0
    """Dask priority of the chain's tasks when they run on `base` (`SHARED_READER_PRIORITY`, or
    `BRANCH_END_PRIORITY` where it only selects tags or its output has one reader at most: `ranked`)."""
    created: tuple[list[t.Any], ...] | None = None
    """When `base` is a `Create` that this chain alone reads: its partitions' elements, which the
    chain's tasks then hold themselves (`Chain.bag`)."""

    def reads_shared(self) -> bool:
        """Whether the chain reads a partition other tasks read too and waits for no side input."""
        return self.priority >= SHARED_READER_PRIORITY and not self.values

    def ranked(self, ends_branch: bool) -> Chain:
        """The chain with its priority, once its last ParDo is known: a chain that reads a shared
        partition gets `BRANCH_END_PRIORITY` where it `ends_branch` or only selects tags."""
        if self.priority < SHARED_READER_PRIORITY:
            return self
        light = ends_branch or all(isinstance(step.fn, OnlyTagFn) for step in self.fused.steps)
        return dataclasses.replace(
            self, priority=BRANCH_END_PRIORITY if light and BRANCH_END_PRIORITY else SHARED_READER_PRIORITY)

    def then(self, step: BundleStep, values: list[t.Any]) -> Chain:
        return dataclasses.replace(self, fused=self.fused.then(step), values=[*self.values, *values])

    def bag(self) -> t.Any:
        import dask

        if self.grouping is not None:
            return self.grouping.bag(self.fused, self.values)
        if self.created is not None:
            return self.created_bag()
        with dask.annotate(priority=self.priority) if self.priority else contextlib.nullcontext():
            return self.base.map_partitions(run_steps, self.fused, *self.values)

    def created_bag(self) -> t.Any:
        """The chain run on a `Create`'s elements held in its own tasks: tasks with no dependency
        but side inputs, which distributed's scheduler treats as root tasks and queues, sending a
        worker one more only when it has few left to run (`distributed.scheduler.worker-saturation`),
        so each partition read goes on through its readers before the next is read. On the
        `Create`'s partitions every read was sent to the workers at once, and each worker read
        partitions while the readers of those it had read waited for data or a free thread."""
        from dask import bag as db
        from dask._task_spec import DataNode, Task, TaskRef
        from dask.base import tokenize
        from dask.highlevelgraph import HighLevelGraph, MaterializedLayer

        assert self.created is not None
        name = f"run_steps-{tokenize(self.fused, self.created, [value.key for value in self.values])}"
        sides = [TaskRef(value.key) for value in self.values]
        layer = {(name, i): Task((name, i), run_steps, DataNode(None, part), self.fused, *sides)
                 for i, part in enumerate(self.created)}
        annotations = {"priority": self.priority} if self.priority else None
        graph = HighLevelGraph.from_collections(name, MaterializedLayer(layer, annotations=annotations), self.values)
        return db.Bag(graph, name, len(self.created))

    def sources(self) -> list[Source]:
        """What a grouping that reads this chain alone transfers: the chain run in the transfer
        tasks, on the other grouping's output partitions where it runs in that grouping's unpack
        tasks (each transfer task is then that grouping's unpack task too), on each input of the
        Flatten it reads, or on its base. A restarted shuffle reruns its transfer tasks; where they
        unpack another grouping whose run has ended, the scheduler reruns that grouping first (its
        barrier is a dependency of theirs), as it reran the unpack tasks they read before
        (tests/test_dask_streaming.py kills a worker in either grouping)."""
        if self.grouping is not None:
            if not TRANSFER_FROM_UNPACK:  # the baseline: the unpack tasks' outputs, held until transferred
                return [Source(self.bag())]
            return [Source(None, self.fused, tuple(self.values), unpacked=self.grouping)]
        if self.flattened:
            return [source.then(self) for source in self.flattened]
        return [Source(self.base, self.fused, tuple(self.values))]


class P2PGrouping:
    """(key, value) items grouped through distributed's P2P shuffle, up to its barrier: a transfer
    task per partition of each source (`Chain.sources`: the ParDos that make the grouping's input
    run in them), as many output partitions as the widest source has. `bag(fused, side_values)`
    makes the output partitions, with the ParDos read after the grouping fused into the unpack tasks.
    `layout` is how the items travel (`BLOBS`, or `ITEM_ROWS`: the baseline)."""

    def __init__(self, sources: t.Sequence[Source], token: str, layout: Layout = BLOBS, run: str = "",
                 label: str = "") -> None:
        from dask.delayed import Delayed
        from dask.highlevelgraph import HighLevelGraph, MaterializedLayer
        from distributed.shuffle._core import P2PBarrierTask, ShuffleId, barrier_key, p2p_barrier
        from distributed.shuffle._shuffle import DataFrameShuffleSpec

        self.token, self.layout = token, layout
        self.npartitions = max(source.npartitions for source in sources)
        target = Target(token, sum(source.npartitions for source in sources), self.npartitions, layout, ITEMS_PER_PIECE,
                        SUBGROUPS, run, label)
        transfers: dict[t.Any, t.Any] = {}
        for source in sources:  # input partitions numbered across the sources: each a transfer of its own
            for i in range(source.npartitions):
                key = (f"shuffle-transfer-{token}", len(transfers))
                transfers[key] = source.transfer_task(key, i, target, len(transfers))
        spec_class: type[DataFrameShuffleSpec] = DataFrameShuffleSpec
        if layout.arrow:
            from lemur_corpus.pipelines.dask_blob_shuffle import BlobShuffleSpec

            spec_class = BlobShuffleSpec
        spec = spec_class(id=ShuffleId(token), npartitions=self.npartitions, column=PARTITION,
                          meta=layout.meta(self.npartitions), parts_out=self.npartitions, disk=True, drop_column=True)
        barrier = P2PBarrierTask(barrier_key(ShuffleId(token)), p2p_barrier, token,
                                 *(task.ref() for task in transfers.values()), spec=spec)
        layer: dict[t.Any, t.Any] = {**transfers, barrier.key: barrier}
        name = str(barrier.key)  # the barrier's key is a string: barrier_key's
        needed = {id(c): c for source in sources for c in source.dependencies()}  # a bag flattened twice: once
        annotations = {"priority": TRANSFER_PRIORITY} if TRANSFER_PRIORITY else None
        self.barrier = Delayed(name, HighLevelGraph.from_collections(
            name, MaterializedLayer(layer, annotations=annotations), list(needed.values())))

    def bag(self, fused: FusedSteps | None = None, side_values: t.Sequence[t.Any] = ()) -> t.Any:
        from dask import bag as db
        from dask._task_spec import Task, TaskRef
        from dask.base import tokenize
        from dask.highlevelgraph import HighLevelGraph

        name = f"p2p-groups-{tokenize(self.token, fused)}"
        sides = [TaskRef(value.key) for value in side_values]
        layer: dict[t.Any, t.Any] = {
            (name, j): Task((name, j), unpacked_steps, self.token, j, TaskRef(self.barrier.key), self.layout,
                             fused, *sides)
            for j in range(self.npartitions)}
        dependencies: list[t.Any] = [self.barrier, *side_values]  # Delayed: not a DaskCollection to its stubs
        graph = HighLevelGraph.from_collections(name, layer, dependencies)
        return db.Bag(graph, name, self.npartitions)
