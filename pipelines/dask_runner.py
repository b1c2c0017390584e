"""`--runner=DaskRunner`: Beam's DaskRunner with the four fixes a real build needs.

Beam 2.77's DaskRunner (`apache_beam/runners/dask/`) translates a pipeline into dask bags. Four of its
behaviours break or cripple our build, measured on a small real build (206 documents, 2 workers):

1. **Side inputs are recomputed.** A side input travels as its bag, which the consuming task
   computes with `list(bag)`: a nested compute of the side input's whole upstream graph, once per
   partition of every ParDo that reads it (it does not deadlock: `Client.get` secedes from the
   worker thread). The build's manifest step alone has six side inputs, each re-running the
   pipeline: the input files were read 13 times and the build took 253 s instead of 11 s.
   Here a side input is a dask dependency, materialized once per graph and shared.
2. **Only the last transform runs.** `run_pipeline` computes the bag of the last transform
   visited; a branch that does not feed it never runs. Here every leaf runs.
3. **`finish_bundle` outputs are lost.** A bundle's outputs are collected before `finish_bundle`
   is called, so `BatchElements` drops the last partial batch of every partition (tokenize lost
   documents; the manifest's accounting caught it). Here they are collected after.
4. **No parallel reading, too many tasks, setup per partition.** `Create` puts up to 128 elements
   in one partition, so a build's few read tasks run one after another on one worker; `Flatten`
   adds up its inputs' partitions (a build's accounting had 102); `DoFn.setup` runs for every
   partition (the tokenizer loaded 18 times). Here `Create` spreads its elements over the
   cluster's threads (unless `--dask_npartitions` / `--dask_partition_size` say otherwise),
   `Flatten` keeps its widest input's partitions, and a DoFn is set up once per worker thread.

Two more make memory grow with the corpus, measured with `benchmarks/scale.py --runner dask-cluster`
(every worker's peak RSS x1.59 for x4 documents):

5. **No combiner lifting.** A `CombinePerKey` (and so every `CombineGlobally`: the accounting's
   tallies, the statistics) is a `GroupByKey` of every input element: one partition holds all of a
   key's values, for the accounting a dozen tallies per document. Here each partition first
   combines its own elements (`PartialCombineFn`), and only one accumulator per key and partition
   is shuffled and merged, as Beam's portable runners lift combiners (`pipelines/dask_combine.py`).
   A global combine's accumulators (one per partition, all under one key) are merged in a tree of
   `TREE_SPLIT_EVERY` partitions into one partition instead of being shuffled (`gathered_groups`).
6. **Partitions grow with the input.** `Create` cut the read tasks into a fixed number of
   partitions, and every later grouping keeps that number, so a partition held a growing share
   of the corpus. Here `Create` puts one element in each partition (up to `MAX_CREATE_PARTITIONS`):
   a build's partitions follow its read tasks, one input file each, and a partition holds about
   one file's documents whatever the number of files. A chain that alone reads a `Create` holds
   its elements in its own tasks (`dask_p2p.Chain.created_bag`): with no dependency, distributed
   queues those reads as root tasks and sends a worker another only when it has few tasks left to
   run, instead of every read at once (a worker then read on while what it had read waited).

7. **Every shuffled element's key is hashed by `dask.base.tokenize`.** The stock `GroupByKey` is
   `Bag.groupby`, whose tasks shuffle places an element by `int(tokenize(key), 16)`: an md5 of the
   key's normalized form, computed in Python for every element of every shuffle.
   Here keys are hashed by `key_hash` (xxh64 of Beam's deterministic encoding of the key).

8. **A grouping waits in memory.** Dask's tasks shuffle keeps every input partition of a grouping
   in the workers' memory until the grouping is done, with partitions x partitions tasks (two
   stages above 32 partitions). Above `P2P_ABOVE_PARTITIONS` partitions (`--dask_shuffle=auto`,
   the default) a `GroupByKey` goes through Dask's P2P shuffle instead: each partition's items
   (pickled, with their key's deterministic encoding, one blob per destination partition) stream to
   their destination workers through the workers' local disks, and each output partition groups
   what it received by the key's encoding. Where this distributed has them, the grouping is written as distributed's
   own shuffle tasks, two per partition (`pipelines/dask_p2p.py`), and P2P starts above
   `P2P_TASKS_ABOVE_PARTITIONS`; a lifted combiner's accumulators (5) take it too. Through
   `dask.dataframe` (the fallback) a grouping takes eight tasks per partition, so the accumulators,
   which are few, stay on the tasks shuffle. `benchmarks/scale.py --runner dask-cluster
   --dask-shuffle p2p|tasks` compares them. A P2P grouping of a `Flatten` (every CoGroupByKey)
   transfers each of the Flatten's inputs as it is ready (`FLATTEN_INTO_SHUFFLE`), instead of the
   Flatten's partitions, each of which waited for all of its inputs: dedup's final join read the
   documents and the decisions, so every document waited in memory for the whole of dedup.

9. **A task per partition per ParDo.** Every ParDo is a task per partition whose output waits in
   memory for the next; Dask's optimizer would fuse such chains, but a graph with a P2P shuffle must
   run unoptimized. Here a chain of ParDos whose output nothing else reads runs as one task per
   partition (`pipelines/dask_bundles.py`), in a P2P grouping's transfer tasks when the grouping
   alone reads it, and in its unpack tasks when it reads the grouping alone.
   `benchmarks/dask_graph.py` counts the tasks; `benchmarks/dask_runner_speed.py` times the build.

10. **Dask's order kept whole stages waiting in memory.** A worker runs its ready tasks in the
   order `dask.order` gave them, which after a barrier or at the reads ran the next producer before
   the readers of what was already made: every partition of dedup's Verify waited for its
   transfers (201 of the 268 MiB of task results held at the fullest moment of a 64,000-document
   build), and a multi-output ParDo's partition waited for the reader of its smallest tag. Here a
   grouping's transfer tasks (`dask_p2p.TRANSFER_PRIORITY`) and every chain that reads a partition
   other tasks read too (`dask_p2p.SHARED_READER_PRIORITY`) run before other ready tasks
   (`benchmarks/scale.py --runner dask-cluster` at 62,500 → 250,000 documents: the largest worker
   x1.92 → x1.35, task results held at the fullest moment 1,553 → 560 MiB at 250,000, wall 1,357 →
   863 s). Such a chain is not extended by a ParDo with side inputs: its tasks would wait for them,
   and the shared partition with them (the sampled tokenizer's split, every first document with
   its text, waited for the pools that tokenizing those documents makes). Of a shared partition's
   readers, those that select a tag or end a branch run first, as the transfers do
   (`dask_p2p.BRANCH_END_PRIORITY`): at one priority the read's tallies and drops waited behind the
   filter, and the read's, normalize's and filter's partitions with them.

Multi-output ParDos are an eleventh problem (all tags' elements land in one bag); the build avoids
them with `lemur_corpus.pipelines.outputs.MultiOutputParDo`, so it runs on the stock runner too,
only slowly. Without `--dask_client_address` or `--dask_scheduler_file`, a
`dask.distributed.LocalCluster` of `--dask_workers` single-threaded worker processes is started for
the run (without distributed's statistical profiler: `LOCAL_CLUSTER_CONFIG`) and closed after it.
A failed task is run again up to `--dask_retries` times (the build's writers are idempotent). Beam
metrics (`Metrics.counter`, `.distribution`: the build's per-stage profile) are kept on each worker
and gathered when the pipeline is done (`pipelines/dask_metrics.py`), so `result.metrics()` works
as on Beam's own runners.
Output bytes do not depend on any of this: every stage sorts what it groups.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import logging
import math
import os
import typing as t
import uuid

import apache_beam
from apache_beam import pvalue
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.pipeline import AppliedPTransform, PipelineVisitor
from apache_beam.runners.dask import dask_runner as beam_dask
from apache_beam.runners.dask.overrides import _Create, _Flatten, _GroupByKeyOnly, dask_overrides
from apache_beam.runners.dask.transform_evaluator import (
    TRANSLATIONS,
    DaskBagOp,
    Flatten,
    NoOp,
)

from lemur_corpus.errors import ConfigError
from lemur_corpus.pipelines import dask_p2p
from lemur_corpus.pipelines.dask_bundles import (
    BundleStep,
    FusedSteps,
    SideInputSpec,
    consumer_counts,
    materialize,
    run_steps,
)
from lemur_corpus.pipelines.dask_combine import ACCUMULATORS, GLOBAL_ACCUMULATORS, LiftCombiners
from lemur_corpus.pipelines.dask_p2p import (
    Chain,
    P2PGrouping,
    Source,
    encoded_key,
    grouped,
    groups_by_encoding,
    groups_of_frame,
    key_hash,
    shuffle_frame,
)
from lemur_corpus.pipelines.dask_result import DaskRunResult, released
from lemur_corpus.pipelines.interrupts import quiet_task_failures, sigint_ignored

log = logging.getLogger("corpus")

PARTITIONS_PER_WORKER_THREAD = 2
"""`Create` cuts its elements into at least this many partitions per worker thread of the cluster
(fewer if it has fewer elements): read tasks are few and heavy, and each should have a worker."""
MAX_CREATE_PARTITIONS = 64
"""`Create` puts one element in each partition up to this many (see the module docstring, 6): a
build's read tasks are its input files, and every later grouping keeps the number of partitions,
so a partition holds about one file's documents. Above it, elements share partitions evenly: every
partition is a task in every transform chain and every grouping's shuffle, so the graph grows with
partitions x transforms and a larger cap slows the build more than it saves: at 256, 64,000
documents in 128 files took 269 s instead of 200 and the largest worker 902 MiB instead of 868
(`benchmarks/dask_runner_speed.py --baseline partitions --docs 64000 --docs-per-file 1000`)."""
DEFAULT_RETRIES = 2
"""A worker lost or a transient error (a network filesystem's hiccup) costs a rerun of one task."""
SHUFFLES = ("auto", "p2p", "tasks")
P2P_ABOVE_PARTITIONS = 32
"""`--dask_shuffle=auto` takes Dask's P2P shuffle through `dask.dataframe` for a grouping of more
partitions than this: up to 32 partitions Dask's tasks shuffle is one stage of partitions x
partitions small tasks, faster to start than that P2P; above, it takes two stages and every input
partition waits in memory for the grouping, where P2P streams them through the workers' disks."""
P2P_TASKS_ABOVE_PARTITIONS = 8
"""The same threshold where P2P is written as distributed's own tasks (`pipelines/dask_p2p.py`): two
tasks per partition, fewer than the tasks shuffle's partitions x partitions from a few partitions on
(`benchmarks/scale.py --docs 16000 16000 --runner dask-cluster --docs-per-file 2000 --dask-shuffle
p2p|tasks`: 16 partitions, P2P the faster)."""
FUSE_PARDOS = True
"""Whether chains of ParDos run as one task per partition (`pipelines/dask_bundles.py`); off, every
ParDo is a task of its own, as in Beam's DaskRunner (`benchmarks/dask_graph.py` compares the two)."""
FLATTEN_BY_PARTITION = True
"""Whether a `Flatten`'s partition i is its inputs' i-th partitions in one task (`FlattenBags`); off,
Dask's `repartition` of their concatenation (the baseline of `benchmarks/dask_graph.py`)."""
FLATTEN_INTO_SHUFFLE = True
"""Whether a P2P grouping of a `Flatten` transfers each of the Flatten's inputs as it is ready
(`dask_p2p.Chain.sources`); off, it transfers the Flatten's partitions, each waiting for its every
input (`benchmarks/dask_runner_speed.py --baseline flatten-shuffle`)."""
P2P_TASKS = True
"""Whether a P2P grouping is written as distributed's shuffle tasks (`pipelines/dask_p2p.py`, where
this distributed has them); off, it goes through `dask.dataframe` (`benchmarks/dask_graph.py`)."""
P2P_BLOBS = True
"""Whether such a grouping moves a pickled blob per output partition of each input partition
(`dask_p2p.partition_blobs`); off, a row per item (`benchmarks/dask_runner_speed.py --baseline item-rows`)."""
LOCAL_CLUSTER_CONFIG = {"distributed.worker.profile.enabled": False}
"""Dask settings of the LocalCluster's workers (a cluster of the user's own keeps the user's). Off:
distributed's statistical profiler, which samples every worker thread every 10 ms and keeps a
profile tree per second of the run, up to a thousand, so that a worker grows with the run's length:
`benchmarks/scale.py --docs 62500 250000 --runner dask-cluster` with it off, the largest worker x1.28
instead of x1.35 (README, "Dask")."""
TUNE_WORKER_GC = True
"""Whether each worker runs the build with `worker_memory.GC_THRESHOLDS` (`dask_worker_gc`; off:
the collector as the worker has it, `benchmarks/dask_runner_speed.py --baseline gc`); read by the
driver when the run starts."""
RUN_ID = "_corpus_run_id"
SHUFFLE = "_corpus_shuffle"
DEFAULT_PARTITIONS = "_corpus_default_partitions"
"""Keys the runner adds to the ops' `bag_kwargs` (the stock ops read only their own keys)."""


class CorpusDaskOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--dask_workers", type=int, default=None,
            help="worker processes of the LocalCluster started when no --dask_client_address or "
            "--dask_scheduler_file is given (default: the CPU count)")
        parser.add_argument(
            "--dask_retries", type=int, default=DEFAULT_RETRIES,
            help="times a failed task (one partition of one transform) is run again before the build "
            f"fails (default: {DEFAULT_RETRIES}); the build's writers are idempotent, so a retry "
            "gives the same bytes")
        parser.add_argument(
            "--dask_shuffle", choices=SHUFFLES, default="auto",
            help="how a GroupByKey moves its elements: p2p (Dask's P2P shuffle: each worker streams its "
            "partitions' elements to their destinations through its local disk, so no worker holds a whole "
            "grouping), tasks (Dask's tasks shuffle: in memory, partitions x partitions tasks), or auto "
            f"(default: p2p above {P2P_TASKS_ABOVE_PARTITIONS} partitions, tasks below; above "
            f"{P2P_ABOVE_PARTITIONS} where P2P goes through dask.dataframe)")


class ParDo(DaskBagOp):
    """A ParDo whose side inputs arrive as computed values (see the module docstring, 1 and 3); the
    `BagVisitor` fuses it into its input's chain where it can (`pipelines/dask_bundles.py`)."""

    def step(self, side_inputs: t.Any = None) -> tuple[BundleStep, list[t.Any]]:
        """This ParDo as a step of a fused chain, and its side inputs' materialized values."""
        transform = t.cast(apache_beam.ParDo, self.transform)
        args, kwargs = transform.raw_side_inputs
        main_input = next(iter(self.applied.main_inputs.values()))
        window_fn = main_input.windowing.windowfn if hasattr(main_input, "windowing") else None
        specs, values = [], []
        for spec, materialized in side_inputs or []:
            specs.append(spec)
            values.append(materialized)
        return BundleStep(transform.fn, self.applied.full_label, window_fn, list(args), kwargs, specs), values

    def apply(self, input_bag: t.Any, side_inputs: t.Any = None) -> t.Any:
        step, values = self.step(side_inputs)
        return input_bag.map_partitions(run_steps, FusedSteps(self.bag_kwargs[RUN_ID], (step,)), *values)


class Create(DaskBagOp):
    """`Create` spread over the cluster by default (see the module docstring, 4). `partitions`: its
    elements as cut into the bag's partitions, which a chain that alone reads it holds itself
    (`dask_p2p.Chain.created_bag`)."""

    partitions: tuple[list[t.Any], ...] = ()

    def apply(self, input_bag: t.Any, side_inputs: t.Any = None) -> t.Any:
        from dask import bag as db

        items = t.cast(_Create, self.transform).values
        npartitions = self.bag_kwargs.get("npartitions")
        partition_size = self.bag_kwargs.get("partition_size")
        if not npartitions and not partition_size:
            npartitions = max(self.bag_kwargs[DEFAULT_PARTITIONS], min(len(items), MAX_CREATE_PARTITIONS))
        if npartitions:
            partition_size = math.ceil(len(items) / npartitions) or 1
        # as from_sequence cuts them (one empty partition for no element)
        size = t.cast(int, partition_size)  # set by one of the two branches above
        self.partitions = tuple(list(items[i:i + size]) for i in range(0, len(items), size)) or ([],)
        return db.from_sequence(items, partition_size=partition_size)


def concat_partitions(*partitions: list[t.Any]) -> list[t.Any]:
    return [item for partition in partitions for item in partition]


class FlattenBags(Flatten):
    """`Flatten` into as many partitions as its widest input, not their sum: a build flattens
    dozens of small collections (tallies, statistics) and each partition is a task in every later
    stage. Partition i is the i-th partition of every input that has one, in one task: Dask's
    `repartition` of the inputs' concatenation took five tasks per output partition (a third of a
    build's graph, `benchmarks/dask_graph.py`)."""

    def apply(self, input_bag: t.Any, side_inputs: t.Any = None) -> t.Any:
        from dask.bag import Bag
        from dask.base import tokenize
        from dask.highlevelgraph import HighLevelGraph

        bags = list(input_bag)
        widest = max((bag.npartitions for bag in bags), default=1)
        if len(bags) < 2 or not FLATTEN_BY_PARTITION:
            joined = super().apply(bags, side_inputs)
            return joined.repartition(npartitions=widest) if joined.npartitions > widest else joined
        name = "flatten-" + tokenize(*(bag.name for bag in bags))
        layer: dict[t.Any, t.Any] = {
            (name, i): (concat_partitions, *((bag.name, i) for bag in bags if i < bag.npartitions))
            for i in range(widest)}
        return Bag(HighLevelGraph.from_collections(name, layer, dependencies=bags), name, widest)


def _key(item: tuple[t.Any, t.Any]) -> t.Any:
    return item[0]


class GroupByKey(DaskBagOp):
    """Beam's `GroupByKey` as Dask's P2P shuffle or its tasks shuffle (see the module docstring, 8),
    each key hashed by `key_hash`; `p2p` says which this grouping took, `grouping` is its P2P
    shuffle written as distributed's own tasks (`pipelines/dask_p2p.py`), where this distributed
    has them (else the shuffle goes through `dask.dataframe`)."""

    p2p: bool = False
    grouping: P2PGrouping | None = None
    sources: list[Source] | None = None
    """Where its P2P transfer tasks take their partitions from, when the grouping alone reads the
    fused ParDos that make its input (they run in the transfer tasks) or the Flatten of its inputs
    (`dask_p2p.Chain.sources`); else the input bag's partitions."""

    def apply(self, input_bag: t.Any, side_inputs: t.Any = None) -> t.Any:
        import dask
        from dask import bag as db
        from dask import dataframe as dd
        from dask.bag.core import groupby_tasks

        if f"/{GLOBAL_ACCUMULATORS}/" in f"/{self.applied.full_label}":
            return gathered_groups(input_bag)
        method = self.bag_kwargs.get(SHUFFLE, "auto")
        p2p_tasks = P2P_TASKS and dask_p2p.available()
        if method == "auto":
            above = P2P_TASKS_ABOVE_PARTITIONS if p2p_tasks else P2P_ABOVE_PARTITIONS
            method = "p2p" if input_bag.npartitions > above else "tasks"
        # a lifted combiner's accumulators are few: through dask.dataframe a P2P grouping cost more
        # tasks than the tasks shuffle's, written as distributed's own tasks far fewer
        self.p2p = method == "p2p" and (p2p_tasks or f"/{ACCUMULATORS}/" not in f"/{self.applied.full_label}")
        if not self.p2p:
            return groupby_tasks(input_bag, _key, hash=key_hash).map(grouped)
        if p2p_tasks:
            token = dask.base.tokenize(self.bag_kwargs[RUN_ID], self.applied.full_label)
            layout = dask_p2p.BLOBS if P2P_BLOBS else dask_p2p.ITEM_ROWS
            self.grouping = P2PGrouping(self.sources or [Source(input_bag)], token, layout, self.bag_kwargs[RUN_ID],
                                        self.applied.full_label)
            return self.grouping.bag()
        parts = input_bag.to_delayed(optimize_graph=False)
        frames = dd.from_delayed([dask.delayed(shuffle_frame)(part) for part in parts], meta=shuffle_frame([]),
                                 verify_meta=False)
        shuffled = frames.shuffle(on="hash", npartitions=input_bag.npartitions, shuffle_method="p2p")
        return db.from_delayed([dask.delayed(groups_of_frame)(part) for part in shuffled.to_delayed()])


TREE_SPLIT_EVERY = 8
"""Partitions merged by each task of `gathered_groups`' tree: 64 partitions take 8 + 1 tasks, where
Dask's tasks shuffle takes a task per pair of partitions (in two stages above 32 partitions: over a
thousand tasks at 62), and every later transform of a combine's output then runs once per partition."""


def _items(partition: t.Iterable[t.Any]) -> list[t.Any]:
    return list(partition)


def _concatenated(parts: t.Iterable[list[t.Any]]) -> list[t.Any]:
    return [item for part in parts for item in part]


def _groups(items: list[t.Any]) -> list[tuple[t.Any, list[t.Any]]]:
    """Gathered items grouped by their key's encoding, as a shuffled partition's are."""
    return groups_by_encoding((encoded_key(item[0]), item) for item in items)


def gathered_groups(input_bag: t.Any) -> t.Any:
    """A grouping of few items (a global combine's accumulators: one per partition) as a tree
    reduction into one partition, grouped there: no shuffle, and one partition downstream."""
    from dask import bag as db

    gathered = input_bag.reduction(_items, _concatenated, split_every=TREE_SPLIT_EVERY)
    return db.from_delayed([gathered.to_delayed(optimize_graph=False)]).map_partitions(_groups)


OPS: dict[type, type[DaskBagOp]] = {
    **TRANSLATIONS, apache_beam.ParDo: ParDo, _Create: Create, _Flatten: FlattenBags, _GroupByKeyOnly: GroupByKey}


@dataclasses.dataclass
class BagVisitor(PipelineVisitor):
    """Translates every primitive transform to a bag, fusing chains of ParDos into one task per
    partition (`pipelines/dask_bundles.py`), and remembers which bags nothing consumes."""

    bag_kwargs: dict[str, t.Any]
    consumers: collections.Counter[AppliedPTransform]
    """How many transforms read each transform's output (`dask_bundles.consumer_counts`)."""
    fuse: bool = True
    bags: dict[AppliedPTransform, t.Any] = dataclasses.field(default_factory=dict)
    chains: dict[AppliedPTransform, Chain] = dataclasses.field(default_factory=dict)
    """The chain of fused ParDos that makes a ParDo's bag (`Chain.bag`)."""
    groupings: dict[AppliedPTransform, P2PGrouping] = dataclasses.field(default_factory=dict)
    """The groupings written as distributed's P2P tasks: a ParDo after one runs in its unpack tasks."""
    flattened: dict[AppliedPTransform, tuple[Source, ...]] = dataclasses.field(default_factory=dict)
    """A Flatten's inputs as a grouping can transfer them (`dask_p2p.Chain.flattened`)."""
    created: dict[AppliedPTransform, tuple[list[t.Any], ...]] = dataclasses.field(default_factory=dict)
    """A `Create`'s elements by partition (`dask_p2p.Chain.created`)."""
    consumed: set[AppliedPTransform] = dataclasses.field(default_factory=set)
    p2p: bool = False
    """Whether a grouping takes Dask's P2P shuffle (the graph must then run unoptimized, see `run_pipeline`)."""

    def visit_transform(self, node: AppliedPTransform) -> None:
        import dask

        op = OPS.get(node.transform.__class__, NoOp)(node, bag_kwargs=self.bag_kwargs)
        kwargs: dict[str, t.Any] = {"input_bag": None, "side_inputs": None}
        inputs = list(node.inputs)
        if inputs:
            bags: list[t.Any] = []
            for value in inputs:
                if isinstance(value, pvalue.PBegin):
                    bags.append(None)
                elif value.producer in self.bags:
                    bags.append(self.bags[value.producer])
                    self.consumed.add(value.producer)
            kwargs["input_bag"] = bags[0] if len(bags) == 1 and not isinstance(op, Flatten) else bags
        sides = []
        for side in node.side_inputs:
            bag = self.bags[side.pvalue.producer]
            self.consumed.add(side.pvalue.producer)
            spec = SideInputSpec(type(side), side._view_options(), side._window_mapping_fn)
            materialized = dask.delayed(materialize, pure=True)(spec.window_fn, *bag.to_delayed(optimize_graph=False))
            sides.append((spec, materialized))
        kwargs["side_inputs"] = sides
        if isinstance(op, ParDo) and kwargs["input_bag"] is not None:
            self.bags[node] = self._fused(node, op, kwargs["input_bag"], sides)
        elif isinstance(op, GroupByKey):
            producer = self._alone(node)
            chain = self.chains.get(producer)  # type: ignore[arg-type]  # None: no chain
            flattened = self.flattened.get(producer, ())  # type: ignore[arg-type]  # as above
            op.sources = chain.sources() if chain is not None else list(flattened) or None
            self.bags[node] = op.apply(**kwargs)
        else:
            self.bags[node] = op.apply(**kwargs)
            if isinstance(op, Create) and self.fuse:
                self.created[node] = op.partitions
            if isinstance(op, Flatten) and FLATTEN_INTO_SHUFFLE and self.fuse and len(node.inputs) > 1:
                self.flattened[node] = tuple(s for value in node.inputs for s in self._sources(value.producer))
            if type(op) is NoOp and len(node.main_inputs) == 1 and (producer := self._alone(node)) is not None:
                # a pass-through (on Dask, Beam's GroupAlsoByWindow after every grouping): what reads
                # it may fuse as if it read the producer
                if producer in self.chains:
                    self.chains[node] = self.chains[producer]
                if producer in self.groupings:
                    self.groupings[node] = self.groupings[producer]
                if producer in self.created:  # the build's read: Create, then Reshuffle (a pass-through here)
                    self.created[node] = self.created[producer]
        self.p2p = self.p2p or getattr(op, "p2p", False)
        if isinstance(op, GroupByKey) and op.grouping is not None:
            self.groupings[node] = op.grouping

    def _alone(self, node: AppliedPTransform) -> AppliedPTransform | None:
        """The producer of the node's main input, when fusing and nothing else reads that output."""
        producer = t.cast(AppliedPTransform, next(iter(node.main_inputs.values())).producer)  # set once consumed
        return producer if self.fuse and self.consumers[producer] == 1 else None

    def _sources(self, producer: AppliedPTransform) -> list[Source]:
        """A Flatten's input as a grouping of the Flatten transfers it: where the Flatten alone
        reads it, the ParDos that make it on their own input (`Chain.sources`), or the inputs of
        the Flatten it is; else its bag."""
        if self.consumers[producer] == 1 and producer in self.chains:
            return self.chains[producer].sources()
        if self.consumers[producer] == 1 and producer in self.flattened:
            return list(self.flattened[producer])
        return [Source(self.bags[producer])]

    def _fused(self, node: AppliedPTransform, op: ParDo, input_bag: t.Any, sides: list[t.Any]) -> t.Any:
        """The ParDo's bag: its input's chain extended by it when that chain's output is read by this
        ParDo alone (a P2P grouping's output: run in its unpack tasks), else a chain of its own on
        its input bag. A chain that reads a shared partition is not extended by a ParDo with side
        inputs: the chain's tasks would wait for the side inputs, and the shared partition (every
        tag of a multi-output ParDo) with them, where the chain alone can run and let it go."""
        step, values = op.step(sides)
        producer = self._alone(node)
        if producer in self.chains and not (values and self.chains[producer].reads_shared()):
            chain = self.chains[producer].then(step, values)
        else:
            fused = FusedSteps(self.bag_kwargs[RUN_ID], (step,))
            chain = Chain(fused, values, input_bag, self.groupings.get(producer) if producer else None,
                          self.flattened.get(producer, ()) if producer else (),
                          priority=dask_p2p.SHARED_READER_PRIORITY if self.fuse and producer is None else 0,
                          created=self.created.get(producer) if producer else None)
        chain = chain.ranked(ends_branch=self.consumers[node] <= 1)
        self.chains[node] = chain
        # the chain it extends keeps its own bag, which nothing computes: only this one is in the graph
        return chain.bag()

    def leaves(self) -> list[t.Any]:
        """The bags nothing consumes: computing them computes the whole pipeline."""
        return [bag for node, bag in self.bags.items() if node not in self.consumed and bag is not None]


class DaskRunner(beam_dask.DaskRunner):
    """Beam's DaskRunner with side inputs computed once, every leaf run, `finish_bundle` outputs
    kept and `Create` spread over partitions; a LocalCluster when no scheduler is named."""

    def run_pipeline(self, pipeline: apache_beam.Pipeline, options: PipelineOptions) -> DaskRunResult:
        import dask
        from dask import distributed

        dask_options = options.view_as(beam_dask.DaskOptions).get_all_options(drop_default=True, current_only=True)
        bag_kwargs = beam_dask.DaskOptions._extract_bag_kwargs(dask_options)
        cluster = None
        if not dask_options.get("address") and not dask_options.get("scheduler_file"):
            workers = options.view_as(CorpusDaskOptions).dask_workers or os.cpu_count() or 1
            # the workers' Nannies take the config they start with; the worker processes start with
            # Ctrl-C ignored (inherited): the driver handles it and closes the cluster, where each
            # worker printed its own KeyboardInterrupt traceback
            with dask.config.set(LOCAL_CLUSTER_CONFIG), sigint_ignored():
                cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                   dashboard_address=":0")
            dask_options["address"] = cluster.scheduler_address
            log.info("dask: started a LocalCluster of %d worker processes at %s", workers, cluster.scheduler_address)
        try:
            client = distributed.Client(**dask_options)
        except OSError as exc:  # a wrong or unreachable scheduler address is the user's to fix
            if cluster is not None:
                cluster.close()
            where = dask_options.get("address") or dask_options.get("scheduler_file")
            raise ConfigError(f"cannot reach the dask scheduler at {where}: {exc} (check "
                              "--dask_client_address / --dask_scheduler_file)") from None
        if cluster is not None:  # its workers' terminal is the user's: see quiet_task_failures
            client.run(quiet_task_failures)
        if TUNE_WORKER_GC:
            from lemur_corpus.pipelines.dask_worker_gc import GcThresholds

            client.register_plugin(GcThresholds())
        threads = sum(client.nthreads().values()) or 1
        bag_kwargs[RUN_ID] = uuid.uuid4().hex
        bag_kwargs[DEFAULT_PARTITIONS] = PARTITIONS_PER_WORKER_THREAD * threads
        bag_kwargs[SHUFFLE] = options.view_as(CorpusDaskOptions).dask_shuffle
        pipeline.replace_all([LiftCombiners(), *dask_overrides()])
        visitor = BagVisitor(bag_kwargs, consumer_counts(pipeline), fuse=FUSE_PARDOS)
        pipeline.visit(visitor)
        counts = [leaf.count() for leaf in visitor.leaves()]
        retries = options.view_as(CorpusDaskOptions).dask_retries
        # Dask's bag optimizer (fusing each partition's chain of transforms into one task) rewrites
        # the P2P shuffles' barrier tasks, which Dask's P2P extension must find as they are.
        try:
            futures = client.compute(counts, retries=retries, optimize_graph=not visitor.p2p)
        except BaseException:  # nothing runs: close what was started for the run, not left to exit
            released(client, cluster, TUNE_WORKER_GC)
            raise
        return DaskRunResult(client, futures, bag_kwargs[RUN_ID], cluster, TUNE_WORKER_GC)
