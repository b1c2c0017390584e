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
   one file's documents whatever the number of files.

7. **Every shuffled element's key is hashed by `dask.base.tokenize`.** The stock `GroupByKey` is
   `Bag.groupby`, whose tasks shuffle places an element by `int(tokenize(key), 16)`: an md5 of the
   key's normalized form, computed in Python for every element of every shuffle.
   Here keys are hashed by `key_hash` (xxh64 of Beam's deterministic encoding of the key).

8. **A grouping waits in memory.** Dask's tasks shuffle keeps every input partition of a grouping
   in the workers' memory until the grouping is done, with partitions x partitions tasks (two
   stages above 32 partitions). Above `P2P_ABOVE_PARTITIONS` partitions (`--dask_shuffle=auto`,
   the default) a `GroupByKey` goes through Dask's P2P shuffle instead: each partition's items
   (pickled, with their key's hash and deterministic encoding) stream to their destination
   workers through the workers' local disks, and each output partition groups what it received by
   the key's encoding. A lifted combiner's accumulators (5) stay on the tasks shuffle: they are
   few. `benchmarks/scale.py --runner dask-cluster --docs-per-file 1000 --dask-shuffle p2p|tasks`
   compares them.

Multi-output ParDos are a ninth problem (all tags' elements land in one bag); the build avoids
them with `lemur_corpus.pipelines.outputs.MultiOutputParDo`, so it runs on the stock runner too,
only slowly. Without `--dask_client_address` or `--dask_scheduler_file`, a
`dask.distributed.LocalCluster` of `--dask_workers` single-threaded worker processes is started for
the run and closed after it. A failed task is run again up to `--dask_retries` times (the build's
writers are idempotent). Beam metrics (`Metrics.counter`, `.distribution`: the build's per-stage
profile) are kept on each worker and gathered when the pipeline is done (`pipelines/dask_metrics.py`),
so `result.metrics()` works as on Beam's own runners.
Output bytes do not depend on any of this: every stage sorts what it groups.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import pickle
import typing as t
import uuid

import apache_beam
import xxhash
from apache_beam import pvalue
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.pipeline import AppliedPTransform, PipelineVisitor
from apache_beam.pvalue import TaggedOutput
from apache_beam.runners.common import DoFnContext, DoFnInvoker, DoFnSignature, _OutputHandler
from apache_beam.runners.dask import dask_runner as beam_dask
from apache_beam.runners.dask.overrides import _Create, _Flatten, _GroupByKeyOnly, dask_overrides
from apache_beam.runners.dask.transform_evaluator import (
    TRANSLATIONS,
    DaskBagOp,
    Flatten,
    NoOp,
    OneReceiver,
    get_windowed_value,
)
from apache_beam.runners.runner import PipelineResult, PipelineState
from apache_beam.transforms.sideinputs import SideInputMap
from apache_beam.transforms.window import GlobalWindows, TimestampedValue
from apache_beam.utils.windowed_value import WindowedValue

from lemur_corpus.errors import ConfigError
from lemur_corpus.pipelines.dask_combine import ACCUMULATORS, GLOBAL_ACCUMULATORS, GLOBAL_WINDOWS, LiftCombiners
from lemur_corpus.pipelines.dask_metrics import DaskMetrics, bundle_metrics, gather

log = logging.getLogger("corpus")

PARTITIONS_PER_WORKER_THREAD = 2
"""`Create` cuts its elements into at least this many partitions per worker thread of the cluster
(fewer if it has fewer elements): read tasks are few and heavy, and each should have a worker."""
MAX_CREATE_PARTITIONS = 64
"""`Create` puts one element in each partition up to this many (see the module docstring, 6): a
build's read tasks are its input files, and every later grouping keeps the number of partitions,
so a partition holds about one file's documents. Above it, elements share partitions evenly: every
partition is a task in every transform chain and every tasks shuffle, so the graph grows with
partitions x transforms and a much larger cap slows the scheduler more than it saves."""
DEFAULT_RETRIES = 2
"""A worker lost or a transient error (a network filesystem's hiccup) costs a rerun of one task."""
SHUFFLES = ("auto", "p2p", "tasks")
P2P_ABOVE_PARTITIONS = 32
"""`--dask_shuffle=auto` takes Dask's P2P shuffle for a grouping of more partitions than this: up to
32 partitions Dask's tasks shuffle is one stage of partitions x partitions small tasks, faster to
start than P2P; above, it takes two stages and every input partition waits in memory for the
grouping, where P2P streams them through the workers' disks."""
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
            f"(default: p2p above {P2P_ABOVE_PARTITIONS} partitions, tasks below)")


@dataclasses.dataclass(frozen=True)
class SideInputSpec:
    """What a task needs to rebuild one side input's `SideInputMap` from its materialized values."""

    view_class: type[pvalue.AsSideInput]
    view_options: dict[str, t.Any]
    window_fn: t.Any


def _materialize(window_fn: t.Any, *partitions: list[t.Any]) -> list[t.Any]:
    """A side input's elements, all partitions, as windowed values (computed once, shared)."""
    return [get_windowed_value(item, window_fn) for part in partitions for item in part]


_WORKER_FNS: dict[tuple[str, str, int], tuple[apache_beam.DoFn, DoFnSignature]] = {}
"""This worker's set-up DoFns of the current run, by (run, transform, thread): `setup` runs once per
worker and thread, as Beam promises, instead of once per partition (loading the tokenizer 18 times
was a third of a small build's time)."""


def _worker_fn(fn: apache_beam.DoFn, run: str, label: str) -> tuple[apache_beam.DoFn, DoFnSignature, bool]:
    """(the DoFn to use, its signature, whether it still needs `setup`). The signature is read once
    per worker too (Beam inspects every method of the DoFn). A new run tears down the previous run's."""
    import threading

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


def _run_bundle(items: t.Iterable[t.Any], fn: apache_beam.DoFn, run: str, label: str, window_fn: t.Any,
                args: list[t.Any], kwargs: dict[str, t.Any], specs: list[SideInputSpec],
                *side_values: list[t.Any]) -> list[t.Any]:
    """One partition through the DoFn: start_bundle, every element, finish_bundle (whose outputs
    are kept). Receivers are made here, so no state crosses partitions."""
    fn, signature, needs_setup = _worker_fn(fn, run, label)
    receivers = OneReceiver()
    handler = _OutputHandler(
        window_fn=window_fn, main_receivers=receivers[None], tagged_receivers=receivers,
        per_element_output_counter=None, output_batch_converter=None, process_yields_batches=False,
        process_batch_yields_elements=False)
    # Beam annotates `view_class` as an AsSideInput instance; its own runners pass the class, type(side).
    side_inputs = [SideInputMap(s.view_class, s.view_options, values)  # type: ignore[arg-type]  # a class, see above
                   for s, values in zip(specs, side_values, strict=True)]
    invoker = DoFnInvoker.create_invoker(
        signature, handler, context=DoFnContext(label, state=None), side_inputs=side_inputs,
        input_args=args, input_kwargs=kwargs, user_state_context=None,
        bundle_finalizer_param=apache_beam.DoFn.BundleFinalizerParam())
    try:
        with bundle_metrics(run, label):
            if needs_setup:
                invoker.invoke_setup()
            invoker.invoke_start_bundle()
            for item in items:
                invoker.invoke_process(_windowed(item, window_fn))
            invoker.invoke_finish_bundle()
    except BaseException:
        _discard(fn)  # as Beam does: an instance that failed is not used again (the retry sets up anew)
        raise
    return [v.value for v in receivers.values]


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


class ParDo(DaskBagOp):
    """A ParDo whose side inputs arrive as computed values (see the module docstring, 1 and 3)."""

    def apply(self, input_bag: t.Any, side_inputs: t.Any = None) -> t.Any:
        transform = t.cast(apache_beam.ParDo, self.transform)
        args, kwargs = transform.raw_side_inputs
        main_input = next(iter(self.applied.main_inputs.values()))
        window_fn = main_input.windowing.windowfn if hasattr(main_input, "windowing") else None
        specs, values = [], []
        for spec, materialized in side_inputs or []:
            specs.append(spec)
            values.append(materialized)
        return input_bag.map_partitions(
            _run_bundle, transform.fn, self.bag_kwargs[RUN_ID], self.applied.full_label, window_fn, list(args),
            kwargs, specs, *values)


class Create(DaskBagOp):
    """`Create` spread over the cluster by default (see the module docstring, 4)."""

    def apply(self, input_bag: t.Any, side_inputs: t.Any = None) -> t.Any:
        from dask import bag as db

        items = t.cast(_Create, self.transform).values
        npartitions = self.bag_kwargs.get("npartitions")
        partition_size = self.bag_kwargs.get("partition_size")
        if not npartitions and not partition_size:
            npartitions = max(self.bag_kwargs[DEFAULT_PARTITIONS], min(len(items), MAX_CREATE_PARTITIONS))
        if npartitions:
            partition_size = math.ceil(len(items) / npartitions) or 1
        return db.from_sequence(items, partition_size=partition_size)


class FlattenBags(Flatten):
    """`Flatten` into as many partitions as its largest input, not their sum: a build flattens
    dozens of small collections (tallies, statistics) and each partition is a task in every later
    stage."""

    def apply(self, input_bag: t.Any, side_inputs: t.Any = None) -> t.Any:
        joined = super().apply(input_bag, side_inputs)
        widest = max((bag.npartitions for bag in input_bag), default=1)
        return joined.repartition(npartitions=widest) if joined.npartitions > widest else joined


_KEY_CODER = apache_beam.coders.coders.FastPrimitivesCoder().as_deterministic_coder("GroupByKey")


def _key(item: tuple[t.Any, t.Any]) -> t.Any:
    return item[0]


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
    """The same number for equal keys in every process (see the module docstring, 7): xxh64 of the
    key's deterministic encoding (`encoded_key`)."""
    return xxhash.xxh64_intdigest(encoded_key(key))


def _grouped(item: tuple[t.Any, list[t.Any]]) -> tuple[t.Any, list[t.Any]]:
    key, elements = item
    return key, [element.value if isinstance(element, WindowedValue) else element for _, element in elements]


def _binary() -> t.Any:
    import pandas as pd
    import pyarrow as pa

    return pd.ArrowDtype(pa.large_binary())  # large: a partition's items may pass 2 GB


def _shuffle_frame(items: t.Iterable[tuple[t.Any, t.Any]]) -> t.Any:
    """A partition's (key, value) items as the table Dask's P2P shuffle moves: each item's key hash
    (the column it is shuffled on), its key's deterministic encoding (what it is grouped by) and
    the pickled item."""
    import pandas as pd

    hashes, keys, pickled = [], [], []
    for item in items:
        encoded = encoded_key(item[0])
        hashes.append(xxhash.xxh64_intdigest(encoded))
        keys.append(encoded)
        pickled.append(pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL))
    return pd.DataFrame({"hash": pd.Series(hashes, dtype="uint64"), "key": pd.Series(keys, dtype=_binary()),
                         "item": pd.Series(pickled, dtype=_binary())})


def _groups_by_encoding(encoded_items: t.Iterable[tuple[bytes, t.Any]]) -> list[tuple[t.Any, list[t.Any]]]:
    """(key encoding, item) pairs -> (key, [values]) per encoding, in the order they came."""
    groups: dict[bytes, list[t.Any]] = {}
    for encoded, item in encoded_items:
        groups.setdefault(encoded, []).append(item)
    return [_grouped((items[0][0], items)) for items in groups.values()]


def _shuffled_groups(frame: t.Any) -> list[tuple[t.Any, list[t.Any]]]:
    """One shuffled partition's items grouped by their key's encoding: (key, [values])."""
    return _groups_by_encoding(zip(frame["key"], map(pickle.loads, frame["item"]), strict=True))


class GroupByKey(DaskBagOp):
    """Beam's `GroupByKey` as Dask's P2P shuffle or its tasks shuffle (see the module docstring, 8),
    each key hashed by `key_hash`; `p2p` says which this grouping took."""

    def apply(self, input_bag: t.Any, side_inputs: t.Any = None) -> t.Any:
        import dask
        from dask import bag as db
        from dask import dataframe as dd
        from dask.bag.core import groupby_tasks

        if f"/{GLOBAL_ACCUMULATORS}/" in f"/{self.applied.full_label}":
            self.p2p = False
            return gathered_groups(input_bag)
        method = self.bag_kwargs.get(SHUFFLE, "auto")
        if method == "auto":
            method = "p2p" if input_bag.npartitions > P2P_ABOVE_PARTITIONS else "tasks"
        self.p2p = method == "p2p" and f"/{ACCUMULATORS}/" not in f"/{self.applied.full_label}"
        if not self.p2p:
            return groupby_tasks(input_bag, _key, hash=key_hash).map(_grouped)
        parts = input_bag.to_delayed(optimize_graph=False)
        frames = dd.from_delayed([dask.delayed(_shuffle_frame)(part) for part in parts], meta=_shuffle_frame([]),
                                 verify_meta=False)
        shuffled = frames.shuffle(on="hash", npartitions=input_bag.npartitions, shuffle_method="p2p")
        return db.from_delayed([dask.delayed(_shuffled_groups)(part) for part in shuffled.to_delayed()])


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
    return _groups_by_encoding((encoded_key(item[0]), item) for item in items)


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
    """Translates every primitive transform to a bag, and remembers which bags nothing consumes."""

    bag_kwargs: dict[str, t.Any]
    bags: dict[AppliedPTransform, t.Any] = dataclasses.field(default_factory=dict)
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
            materialized = dask.delayed(_materialize, pure=True)(spec.window_fn, *bag.to_delayed(optimize_graph=False))
            sides.append((spec, materialized))
        kwargs["side_inputs"] = sides
        self.bags[node] = op.apply(**kwargs)
        self.p2p = self.p2p or getattr(op, "p2p", False)

    def leaves(self) -> list[t.Any]:
        """The bags nothing consumes: computing them computes the whole pipeline."""
        return [bag for node, bag in self.bags.items() if node not in self.consumed and bag is not None]


@dataclasses.dataclass
class DaskRunResult(PipelineResult):
    """Waits for every leaf (only element counts come back to the client), gathers the workers'
    Beam metrics (`pipelines/dask_metrics.py`), then closes the client and the LocalCluster it
    started, if any."""

    client: t.Any
    futures: list[t.Any]
    run_id: str
    cluster: t.Any = None
    gathered: DaskMetrics | None = None

    def __post_init__(self) -> None:
        super().__init__(PipelineState.RUNNING)

    def wait_until_finish(self, duration: float | None = None) -> str:
        from dask import distributed

        try:
            for _ in distributed.as_completed(self.futures, timeout=duration / 1000 if duration else None,
                                              with_results=True):
                pass  # gathering raises a worker's exception here, on the client
            self.gathered = gather(self.client, self.run_id)
            self._state = PipelineState.DONE
        except BaseException:
            self._state = PipelineState.FAILED
            raise
        finally:
            self._close()
        return self._state

    def cancel(self) -> str:
        self.client.cancel(self.futures)
        self._close()
        self._state = PipelineState.CANCELLED
        return self._state

    def _close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def metrics(self) -> DaskMetrics:
        if self.gathered is None:
            raise RuntimeError("the pipeline has not finished: its metrics are gathered when it is done")
        return self.gathered


class DaskRunner(beam_dask.DaskRunner):
    """Beam's DaskRunner with side inputs computed once, every leaf run, `finish_bundle` outputs
    kept and `Create` spread over partitions; a LocalCluster when no scheduler is named."""

    def run_pipeline(self, pipeline: apache_beam.Pipeline, options: PipelineOptions) -> DaskRunResult:
        from dask import distributed

        dask_options = options.view_as(beam_dask.DaskOptions).get_all_options(drop_default=True, current_only=True)
        bag_kwargs = beam_dask.DaskOptions._extract_bag_kwargs(dask_options)
        cluster = None
        if not dask_options.get("address") and not dask_options.get("scheduler_file"):
            workers = options.view_as(CorpusDaskOptions).dask_workers or os.cpu_count() or 1
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
        threads = sum(client.nthreads().values()) or 1
        bag_kwargs[RUN_ID] = uuid.uuid4().hex
        bag_kwargs[DEFAULT_PARTITIONS] = PARTITIONS_PER_WORKER_THREAD * threads
        bag_kwargs[SHUFFLE] = options.view_as(CorpusDaskOptions).dask_shuffle
        pipeline.replace_all([LiftCombiners(), *dask_overrides()])
        visitor = BagVisitor(bag_kwargs)
        pipeline.visit(visitor)
        counts = [leaf.count() for leaf in visitor.leaves()]
        retries = options.view_as(CorpusDaskOptions).dask_retries
        # Dask's bag optimizer (fusing each partition's chain of transforms into one task) rewrites
        # the P2P shuffles' barrier tasks, which Dask's P2P extension must find as they are.
        try:
            futures = client.compute(counts, retries=retries, optimize_graph=not visitor.p2p)
        except BaseException:  # nothing runs: close what was started for the run, not left to exit
            client.close()
            if cluster is not None:
                cluster.close()
            raise
        return DaskRunResult(client, futures, bag_kwargs[RUN_ID], cluster)
