"""The same bytes on every runner: DirectRunner in-process, DirectRunner multi_processing with 2
workers, and DaskRunner on a dask.distributed LocalCluster of 2 worker processes.

Also the two properties that make a pipeline portable to a primitive runner such as Beam's Dask
translation: multi-output ParDos split by `lemur_corpus.pipelines.outputs.MultiOutputParDo` (never one
bag of mixed tags), and every transform of a pipeline feeds its last one (the manifest, or the command's
summary), so a runner that computes only what the last transform needs still runs everything.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.pipeline import AppliedPTransform, PipelineVisitor
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import GlobalWindows

from lemur_corpus.accounting import Drop
from lemur_corpus.cli import main
from lemur_corpus.document import Document
from lemur_corpus.pipelines.build import RUNNER_ALIASES, construct, prepare, run_build
from lemur_corpus.pipelines.direct_runner import OfflineDirectRunner, beam_pipeline
from lemur_corpus.pipelines.outputs import MultiOutputParDo
from lemur_corpus.variants import VariantConfig
from tests.buildutil import output_digest, slice_config
from tests.conftest import read_jsonl, shared_path

DASK = "--runner=DaskRunner"
MULTI_PROCESSING = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


class ParityFn(beam.DoFn):
    """Main output: even numbers; `odd`: odd numbers; `big`: numbers over `limit` (a side input)."""

    def process(self, n: int, limit: int):  # type: ignore[no-untyped-def]
        if n > limit:
            yield beam.pvalue.TaggedOutput("big", n)
        if n % 2:
            yield beam.pvalue.TaggedOutput("odd", n)
        else:
            yield n


class SumsPerBundleFn(beam.DoFn):
    """Numbers on the main output as they come; when a bundle ends, its count on the main output
    (as a negative number) and its sum on `sums`: what `finish_bundle` emits, tagged and untagged."""

    def start_bundle(self) -> None:
        self.count, self.total = 0, 0

    def process(self, n: int):  # type: ignore[no-untyped-def]
        self.count, self.total = self.count + 1, self.total + n
        yield n

    def finish_bundle(self):  # type: ignore[no-untyped-def]
        yield GlobalWindows.windowed_value(-self.count)
        yield beam.pvalue.TaggedOutput("sums", GlobalWindows.windowed_value(self.total))


def _bundle_sums_pipeline(p: beam.Pipeline, out: Path) -> None:
    split = p | beam.Create(range(1, 41)) | "Sums" >> MultiOutputParDo(SumsPerBundleFn(), "sums", main="numbers")
    (
        [split[name] | f"Label{name}" >> beam.Map(lambda n, name=name: [name, n]) for name in ("numbers", "sums")]
        | beam.Flatten()
        | beam.combiners.ToList()
        | beam.Map(_write_json, str(out))
    )


def _check_bundle_sums(out: Path) -> None:
    """Every number once, the bundles' counts adding up to 40 and their sums to 820, whatever the bundles."""
    found = json.loads(out.read_text())
    numbers = sorted(n for name, n in found if name == "numbers" and n > 0)
    assert numbers == list(range(1, 41))
    assert -sum(n for name, n in found if name == "numbers" and n <= 0) == 40
    assert sum(n for name, n in found if name == "sums") == 820


def _write_json(items: list, path: str) -> None:
    Path(path).write_text(json.dumps(sorted(items, key=str)))


def _parity_pipeline(p: beam.Pipeline, out: Path) -> None:
    """Splits 0..19 three ways; ONE final transform writes all outputs (so it depends on all)."""
    limit = p | "Limit" >> beam.Create([15])
    result = p | beam.Create(range(20)) | "Parity" >> MultiOutputParDo(
        ParityFn(), "odd", "big", main="even", limit=beam.pvalue.AsSingleton(limit))
    (
        [result[name] | f"Label{name}" >> beam.Map(lambda n, name=name: [name, n]) for name in ("even", "odd", "big")]
        | beam.Flatten()
        | beam.combiners.ToList()
        | beam.Map(_write_json, str(out))
    )


def _expected_parity() -> list:
    pairs = [["even", n] for n in range(0, 20, 2)] + [["odd", n] for n in range(1, 20, 2)]
    return sorted(pairs + [["big", n] for n in range(16, 20)], key=str)


def test_multi_output_pardo_splits_tags_and_passes_side_inputs(tmp_path: Path) -> None:
    with beam_pipeline(PipelineOptions()) as p:
        _parity_pipeline(p, tmp_path / "out.json")
    assert json.loads((tmp_path / "out.json").read_text()) == _expected_parity()


@pytest.mark.parametrize("args", [[], ["--runner=DirectRunner"], ["--runner=direct"], MULTI_PROCESSING])
def test_the_direct_runner_runs_offline_without_trying_prism(
        args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Beam's DirectRunner tries PrismRunner first, a binary it downloads from GitHub at run time;
    ours goes straight to the FnApiRunner, and does not take Pipeline.run's runner-API round trip."""
    from apache_beam.runners.portability import prism_runner

    tried = []
    monkeypatch.setattr(prism_runner.PrismRunner, "run_pipeline", lambda *a, **k: tried.append(a))
    monkeypatch.setattr(beam.Pipeline, "from_runner_api", lambda *a, **k: tried.append(a))
    with beam_pipeline(PipelineOptions(args)) as p:
        assert isinstance(p.runner, OfflineDirectRunner)
        _parity_pipeline(p, tmp_path / "out.json")
    assert json.loads((tmp_path / "out.json").read_text()) == _expected_parity()
    assert tried == []
    other = beam_pipeline(PipelineOptions(["--runner=BundleBasedDirectRunner"]))
    assert type(other.runner).__name__ == "BundleBasedDirectRunner"


def test_native_multi_outputs_only_on_the_portable_runners() -> None:
    from apache_beam.runners.direct.direct_runner import BundleBasedDirectRunner
    from apache_beam.runners.portability.flink_runner import FlinkRunner
    from apache_beam.runners.portability.fn_api_runner.fn_runner import FnApiRunner

    from lemur_corpus.pipelines.dask_runner import DaskRunner
    from lemur_corpus.pipelines.outputs import native_multi_outputs

    assert all(native_multi_outputs(r) for r in (OfflineDirectRunner(), FnApiRunner(), FlinkRunner()))
    assert not any(native_multi_outputs(r) for r in (BundleBasedDirectRunner(), DaskRunner()))


@pytest.mark.parametrize("args", [[], MULTI_PROCESSING, ["--runner=BundleBasedDirectRunner"]])
def test_multi_output_pardo_delivers_finish_bundle_outputs_to_their_tags(args: list[str], tmp_path: Path) -> None:
    """Natively (the FnApiRunner) and as (tag, value) pairs (BundleBasedDirectRunner; the fixed
    DaskRunner in the test below): what `finish_bundle` emits reaches its tag, tagged or not."""
    with beam_pipeline(PipelineOptions(args)) as p:
        _bundle_sums_pipeline(p, tmp_path / "out.json")
    _check_bundle_sums(tmp_path / "out.json")


def test_multi_output_pardo_refuses_finish_bundle_outputs_that_are_not_windowed() -> None:
    class Bare(SumsPerBundleFn):
        def finish_bundle(self):  # type: ignore[no-untyped-def]
            yield beam.pvalue.TaggedOutput("sums", self.total)

    with pytest.raises(Exception, match="must emit windowed values|should only output WindowedValue"):
        with beam_pipeline(PipelineOptions(["--runner=BundleBasedDirectRunner"])) as p:
            _ = p | beam.Create([1, 2]) | MultiOutputParDo(Bare(), "sums", main="numbers")


def test_multi_output_pardo_rejects_main_named_like_a_tag() -> None:
    with pytest.raises(ValueError, match="also a tag"):
        MultiOutputParDo(ParityFn(), "odd", main="odd")


class _Graph(PipelineVisitor):
    def __init__(self) -> None:
        self.order: list[AppliedPTransform] = []
        self.parents: dict[AppliedPTransform, list[AppliedPTransform]] = {}

    def visit_transform(self, node: AppliedPTransform) -> None:
        self.order.append(node)
        producers = [v.producer for v in node.inputs if getattr(v, "producer", None) is not None]
        self.parents[node] = producers + [side.pvalue.producer for side in node.side_inputs]

    def not_feeding_last(self) -> list[str]:
        seen: set[AppliedPTransform] = set()
        stack = [self.order[-1]]
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(self.parents[node])
        return [n.full_label for n in self.order if n not in seen]


def _graph(p: beam.Pipeline) -> _Graph:
    graph = _Graph()
    p.visit(graph)
    return graph


def test_every_build_transform_feeds_the_manifest(tmp_path: Path) -> None:
    config = slice_config(code_rows=20, web_rows=10)
    p = beam.Pipeline(options=PipelineOptions([]))
    construct(p, prepare(config, str(tmp_path)))
    graph = _graph(p)
    assert graph.order[-1].full_label == "WriteManifest/Write"
    assert graph.not_feeding_last() == []
    stages = {n.full_label.split("/")[0] for n in graph.order}
    assert {"WriteShards", "WriteDropLog"} <= stages  # the sinks are among the manifest's ancestors


def test_each_stage_is_one_composite_at_the_top_of_the_graph(tmp_path: Path) -> None:
    """Stages keep their labels inside (one box per stage in a runner's UI; a stage applied twice
    under two names does not clash) and return their accounting instead of writing to a shared ledger."""
    config = slice_config(code_rows=20, web_rows=10)
    p = beam.Pipeline(options=PipelineOptions([]))
    construct(p, prepare(config, str(tmp_path)))
    top = [t.full_label for t in p.transforms_stack[0].parts]
    assert top == ["Read", "Normalize", "Filter", "Dedup", "Tokenize", "Mix", "WriteShards", "AllTallies",
                   "WriteDropLog", "Accounting", "FirstBadRecords", "RemoveSpills", "WriteManifest"]

    variants = slice_config(code_rows=20, web_rows=10, variants=[{"name": "r5", "code_text_ratio": 5}])
    p = beam.Pipeline(options=PipelineOptions([]))
    construct(p, prepare(variants, str(tmp_path / "variants")))
    top = [t.full_label for t in p.transforms_stack[0].parts]
    assert top == ["Read", "Normalize", "Filter", "Dedup", "Tokenize", "Mix", "WriteShards", "AllTallies",
                   "WriteDropLog", "Accounting", "FirstBadRecords", "WriteVariantShards", "RemoveSpills",
                   "WriteVariantManifests", "WriteManifest"]
    assert _graph(p).not_feeding_last() == []  # the variants' sinks feed the main manifest too

    from lemur_corpus.pipelines.ledger import DocumentStage, StageFn

    with beam_pipeline(PipelineOptions()) as twice:
        docs = twice | beam.Create([Document(id=f"t/{i}", source="web", kind="text", text="x" * i) for i in range(6)])
        first = docs | "KeepEven" >> DocumentStage("even", StageFn(_drop_odd, "even"))
        second = first.docs | "KeepEvenAgain" >> DocumentStage("even", StageFn(_drop_odd, "even"))
        assert_that(second.docs | beam.Map(lambda d: d.id), equal_to(["t/0", "t/2", "t/4"]), label="Kept")
        assert_that(first.drops | "DropIds" >> beam.Map(lambda d: d.id), equal_to(["t/1", "t/3", "t/5"]),
                    label="Dropped")


def _drop_odd(doc: Document) -> Document | Drop:
    if len(doc.text) % 2:
        return Drop("even", doc.source, "odd", doc.nbytes, doc.id, doc.origin)
    return doc


def test_every_dedup_command_transform_feeds_the_summary(tmp_path: Path) -> None:
    from lemur_corpus.dedup.config import DedupConfig
    from lemur_corpus.pipelines.dedup_files import command_config
    from lemur_corpus.pipelines.dedup_files import construct as construct_dedup

    path = str(shared_path("dups", "code_forks.docs.jsonl.zst"))
    config = command_config([path], DedupConfig(), "id", "content")
    p = beam.Pipeline(options=PipelineOptions([]))
    construct_dedup(p, config, "code", str(tmp_path), "id", "content", 2)
    graph = _graph(p)
    assert graph.order[-1].full_label == "Summary"
    assert graph.not_feeding_last() == []


def test_dask_alias_names_the_fixed_runner() -> None:
    from apache_beam.runners.runner import create_runner

    from lemur_corpus.pipelines.dask_runner import DaskRunner

    assert isinstance(create_runner(RUNNER_ALIASES["DaskRunner"]), DaskRunner)


def test_an_unreachable_dask_scheduler_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A wrong --dask_client_address: one `error:` line naming it, exit 2, a FAILED.json marker."""
    out = tmp_path / "out"
    code = main(["build", "--out", str(out), "--", f"--runner={RUNNER_ALIASES['DaskRunner']}",
                 "--dask_client_address=tcp://127.0.0.1:1", "--dask_connection_timeout=1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("error: cannot reach the dask scheduler at tcp://127.0.0.1:1")
    assert "Traceback" not in "\n".join(err)
    assert (out / "FAILED.json").exists() and not (out / "manifest.json").exists()


@pytest.mark.slow
def test_multi_output_pardo_on_stock_and_fixed_dask(dask_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Beam's own DaskRunner puts every tag's elements in one bag; the split by tag is right on it too."""
    address = f"--dask_client_address={dask_cluster.scheduler_address}"
    for runner in ("apache_beam.runners.dask.dask_runner.DaskRunner", RUNNER_ALIASES["DaskRunner"]):
        out = tmp_path / f"{runner.split('.')[0]}.json"
        with beam.Pipeline(options=PipelineOptions([f"--runner={runner}", address])) as p:
            _parity_pipeline(p, out)
        p.result.client.close()  # Beam's own result leaves its client open
        assert json.loads(out.read_text()) == _expected_parity(), runner
    out = tmp_path / "bundle_sums.json"
    with beam.Pipeline(options=PipelineOptions([f"--runner={RUNNER_ALIASES['DaskRunner']}", address])) as p:
        _bundle_sums_pipeline(p, out)  # the fixed runner delivers finish_bundle outputs (Beam's own loses them)
    _check_bundle_sums(out)


class SumAndPieces(beam.CombineFn):
    """A sum that also counts the accumulators merged into it: 1 when every value was added to one
    accumulator (an unlifted combine), the number of partitions holding the key when lifted."""

    def create_accumulator(self) -> tuple[int, int]:
        return 0, 1

    def add_input(self, acc: tuple[int, int], value: int) -> tuple[int, int]:
        return acc[0] + value, acc[1]

    def merge_accumulators(self, accs) -> tuple[int, int]:  # type: ignore[no-untyped-def]  # Beam's signature
        accs = list(accs)
        return sum(a[0] for a in accs), sum(a[1] for a in accs)

    def extract_output(self, acc: tuple[int, int]) -> tuple[int, int]:
        return acc


@pytest.mark.slow
def test_fixed_dask_lifts_combiners_over_one_partition_per_created_element(dask_cluster) -> None:  # type: ignore[no-untyped-def]
    """Each partition combines its own elements before the shuffle (the merge sees one accumulator
    per partition, not every element), and `Create` gives each of its 20 elements a partition of
    its own: key 0's ten values arrive as ten accumulators. An empty global combine keeps its default."""
    address = f"--dask_client_address={dask_cluster.scheduler_address}"
    with beam.Pipeline(options=PipelineOptions([f"--runner={RUNNER_ALIASES['DaskRunner']}", address])) as p:
        numbers = p | beam.Create(list(range(20)))
        per_key = numbers | beam.Map(lambda x: (x % 2, x)) | beam.CombinePerKey(SumAndPieces())
        assert_that(per_key, equal_to([(0, (90, 10)), (1, (100, 10))]), label="PerKey")
        assert_that(numbers | "Global" >> beam.CombineGlobally(sum), equal_to([190]), label="Global")
        empty = p | "Nothing" >> beam.Create([]) | "Count" >> beam.CombineGlobally(beam.combiners.CountCombineFn())
        assert_that(empty, equal_to([0]), label="Empty")


@pytest.mark.parametrize("p2p_tasks", [True, False])
@pytest.mark.parametrize("shuffle", ["auto", "p2p", "tasks"])
def test_groupings_above_32_partitions_take_p2p_with_the_same_groups(
        dask_cluster, shuffle: str, p2p_tasks: bool, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """`--dask_shuffle`: P2P (Dask's disk-backed shuffle) or the tasks shuffle give the same groups, on
    a grouping of 64 partitions (`Create` gives each element its own, up to 64), which auto takes
    through P2P, written as distributed's shuffle tasks or through `dask.dataframe`
    (`dask_runner.P2P_TASKS`); a lifted combiner's accumulators take P2P too where it is written as
    distributed's tasks (the tasks shuffle otherwise), and a global combine's are gathered by a tree
    reduction (with or without defaults, empty or not)."""
    from lemur_corpus.pipelines import dask_p2p, dask_runner

    monkeypatch.setattr(dask_runner, "P2P_TASKS", p2p_tasks)
    chosen: list[tuple[str, bool]] = []
    apply = dask_runner.GroupByKey.apply

    def remembered(self, input_bag, side_inputs=None):  # type: ignore[no-untyped-def]
        bag = apply(self, input_bag, side_inputs)
        chosen.append((self.applied.full_label, self.p2p))
        return bag

    monkeypatch.setattr(dask_runner.GroupByKey, "apply", remembered)
    items = [(f"key-{i % 7}", (i, "x" * (i % 5))) for i in range(300)]
    address = f"--dask_client_address={dask_cluster.scheduler_address}"
    runner = f"--runner={RUNNER_ALIASES['DaskRunner']}"
    with beam.Pipeline(options=PipelineOptions([runner, address, f"--dask_shuffle={shuffle}"])) as p:
        pairs = p | beam.Create(items)
        groups = pairs | beam.GroupByKey() | beam.MapTuple(lambda k, v: (k, sorted(v)))
        expected = [(f"key-{k}", sorted((i, "x" * (i % 5)) for i in range(k, 300, 7))) for k in range(7)]
        assert_that(groups, equal_to(expected), label="Groups")
        sums = pairs | beam.MapTuple(lambda k, v: (k, v[0])) | beam.CombinePerKey(sum)
        assert_that(sums, equal_to([(f"key-{k}", sum(range(k, 300, 7))) for k in range(7)]), label="Sums")
        total = pairs | beam.MapTuple(lambda k, v: v[0]) | "Total" >> beam.CombineGlobally(sum)
        assert_that(total, equal_to([sum(range(300))]), label="Total")
        nothing = pairs | beam.Filter(lambda kv: False)
        counted = nothing | "Count" >> beam.combiners.Count.Globally()
        assert_that(counted, equal_to([0]), label="CountNothing")
        no_default = nothing | "NoDefault" >> beam.CombineGlobally(sum).without_defaults()
        assert_that(no_default, equal_to([]), label="NoDefault")
    took = dict(chosen)
    assert took["GroupByKey/GroupByKey"] is (shuffle != "tasks")
    assert took[f"CombinePerKey(sum)/{dask_runner.ACCUMULATORS}/GroupByKey"] is (
        shuffle != "tasks" and p2p_tasks and dask_p2p.available())
    gathered = {label for label in took if f"/{dask_runner.GLOBAL_ACCUMULATORS}/" in label}
    assert gathered == {f"{name}/CombinePerKey/{dask_runner.GLOBAL_ACCUMULATORS}/GroupByKey" for name in
                        ("Total", "Count/CombineGlobally(CountCombineFn)", "NoDefault")}


def test_a_global_combine_is_recognized_after_beams_runner_api_round_trip() -> None:
    """`Pipeline.run` sends the pipeline through Beam's runner API, after which a `CombineGlobally`
    is a plain `PTransform`: its inner `CombinePerKey` is still known as global by its input."""
    from lemur_corpus.pipelines.dask_combine import is_global_combine

    pipeline = beam.Pipeline(options=PipelineOptions([]))
    numbers = pipeline | beam.Create([1, 2, 3])
    _ = numbers | "Global" >> beam.CombineGlobally(sum)
    _ = numbers | "Count" >> beam.combiners.Count.Globally()
    _ = numbers | beam.Map(lambda n: (n % 2, n)) | "PerKey" >> beam.CombinePerKey(sum)
    again = beam.Pipeline.from_runner_api(pipeline.to_runner_api(use_fake_coders=True), pipeline.runner,
                                          pipeline._options)

    class Combines(PipelineVisitor):
        def __init__(self) -> None:
            self.found: dict[str, bool] = {}

        def enter_composite_transform(self, node: AppliedPTransform) -> None:
            if node.full_label.endswith("/CombinePerKey") or node.full_label == "PerKey":
                self.found[node.full_label] = is_global_combine(node)

    for graph in (pipeline, again):
        combines = Combines()
        graph.visit(combines)
        assert combines.found == {"Global/CombinePerKey": True, "PerKey": False,
                                  "Count/CombineGlobally(CountCombineFn)/CombinePerKey": True}


def test_gathered_groups_merge_64_partitions_in_a_tree_of_few_tasks() -> None:
    """A global combine's accumulators (one per partition) reach one partition through a tree of
    `TREE_SPLIT_EVERY` partitions per task, grouped by key: no shuffle of partitions x partitions."""
    from dask import bag as db

    from lemur_corpus.pipelines import dask_runner

    items = [(None if i % 3 else "other", i) for i in range(64)]
    bag = db.from_sequence(items, npartitions=64)
    gathered = dask_runner.gathered_groups(bag)
    assert gathered.npartitions == 1
    groups = dict(gathered.compute(scheduler="sync"))
    assert set(groups) == {None, "other"}
    assert sorted(groups[None]) == [i for i in range(64) if i % 3]
    assert sorted(groups["other"]) == list(range(0, 64, 3))
    # Beyond the 64 input partitions: one task per partition, the tree (8 + 1), the final grouping.
    tree_tasks = len(dict(gathered.__dask_graph__())) - 64
    assert tree_tasks <= 64 + 64 // dask_runner.TREE_SPLIT_EVERY + 4
    from dask.bag.core import groupby_tasks

    shuffled = groupby_tasks(bag, lambda item: item[0], hash=dask_runner.key_hash)
    assert len(dict(shuffled.__dask_graph__())) - 64 > 5 * tree_tasks  # what the tasks shuffle took


def test_a_pipeline_samples_step_state_every_10_ms_so_bundles_end_without_a_200_ms_wait() -> None:
    """Beam joins its state-sampling thread at the end of every bundle, and the thread finishes its
    sleep first: the period, not the bundle, decides how long that takes (pipelines/state_sampler.py)."""
    from apache_beam.runners.worker import statesampler
    from apache_beam.utils.counters import CounterFactory

    from lemur_corpus.pipelines.state_sampler import SAMPLING_PERIOD_MS

    beam_pipeline(PipelineOptions([]))
    sampler = statesampler.StateSampler("stage", CounterFactory())
    assert sampler.sampling_period_ms == SAMPLING_PERIOD_MS == 10
    sampler.start()
    with sampler.scoped_state("step", "process"):
        pass
    sampler.stop()
    assert sampler.get_info().transition_count >= 2


def test_dask_shuffle_key_hash_is_the_same_for_equal_keys_in_every_process() -> None:
    """Equal keys built apart (other objects, another process with another string hash seed) land
    in the same partition; a key without a deterministic encoding is refused, not hashed two ways
    (Dask's own hash gives two equal frozensets two values, at random)."""
    import subprocess
    import sys

    from lemur_corpus.pipelines.dask_runner import key_hash

    keys = ["doc-1", ("text", "doc-1", 3), ("code", ("a", 2.5), None), b"raw", 7]
    rebuilt = ["doc-" + str(1), ("te" + "xt", "doc-" + "1", 3), ("code", ("a", 2.5), None), b"r" + b"aw", 7]
    hashes = [key_hash(k) for k in keys]
    assert hashes == [key_hash(k) for k in rebuilt]
    assert len(set(hashes)) == len(keys)
    script = f"from lemur_corpus.pipelines.dask_runner import key_hash; print([key_hash(k) for k in {keys!r}])"
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert other.stdout.strip() == str(hashes)
    with pytest.raises(TypeError, match="frozenset has no deterministic encoding"):
        key_hash(frozenset({"a", "b"}))


@pytest.fixture(scope="module")
def matrix_config(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A small real build touching every stage's drops: real code and web pages, one web file with
    three broken records, labelled near-duplicate code and pages (verification, components and the
    walk have work), several shards, the untokenized mixture too."""
    pages = read_jsonl(shared_path("web", "trafilatura_pages.main.jsonl.zst"))[:60]
    lines = [json.dumps(p).encode() for p in pages]
    lines[5] = b'{"id": "cut", "text": "a record cut in'
    lines[9] = json.dumps({"id": "no-text", "body": "x"}).encode()
    lines[13] = lines[13].replace(b'"text": "', b'"text": "\xff', 1)
    web = tmp_path_factory.mktemp("matrix_input") / "web.jsonl.gz"
    web.write_bytes(gzip.compress(b"\n".join(lines) + b"\n", mtime=0))
    return slice_config(code_rows=120, inputs=[
        {"name": "stack", "format": "stack", "kind": "code",
         "paths": [str(shared_path("code", "code_sample.jsonl.zst"))], "limit_per_file": 120},
        {"name": "web", "format": "dolma", "kind": "text", "source": "refinedweb", "paths": [str(web)]},
        {"name": "cc", "format": "dolma", "kind": "text", "source": "wikipedia",
         "paths": [str(shared_path("web", "commoncrawl_samples.jsonl.zst"))]},
        {"name": "forks", "format": "stack", "kind": "code",
         "paths": [str(shared_path("dups", "code_forks.docs.jsonl.zst"))]},
        {"name": "neardup", "format": "dolma", "kind": "text", "source": "refinedweb",
         "paths": [str(shared_path("dups", "web_neardup.docs.jsonl.zst"))], "limit_per_file": 80},
    ], shards={"target_tokens": 60_000, "write_jsonl": True})


@pytest.mark.slow
def test_multi_processing_in_small_bundles_writes_the_in_process_runners_bytes(
        matrix_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Every stage cut into bundles of a few KB or a few dozen grouped values
    (`pipelines/bounded_bundles.py`; a real build's bundles are 32 MB): the same files, byte for byte."""
    from lemur_corpus.pipelines import bounded_bundles

    monkeypatch.setattr(bounded_bundles, "MAX_BUNDLE_BYTES", 4_096)
    monkeypatch.setattr(bounded_bundles, "MAX_BUNDLE_GROUPED_VALUES", 40)
    counts: list[int] = []
    count = bounded_bundles.bundle_count
    monkeypatch.setattr(bounded_bundles, "bundle_count", lambda *a, **k: counts.append(count(*a, **k)) or counts[-1])
    run_build(matrix_config, str(tmp_path / "direct"), [])
    run_build(matrix_config, str(tmp_path / "small"), MULTI_PROCESSING)
    assert output_digest(tmp_path / "small") == output_digest(tmp_path / "direct")
    assert sum(n > 2 for n in counts) >= 10 and max(counts) >= 20  # many stages ran in many bundles


@pytest.mark.slow
def test_runner_matrix_gives_identical_bytes(matrix_config, dask_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    runs = {
        "direct": [],
        "multi_processing": MULTI_PROCESSING,
        "dask": [DASK, f"--dask_client_address={dask_cluster.scheduler_address}"],
        "dask p2p": [DASK, f"--dask_client_address={dask_cluster.scheduler_address}", "--dask_shuffle=p2p"],
    }
    digests, manifests = {}, {}
    for name, args in runs.items():
        manifests[name] = run_build(matrix_config, str(tmp_path / name), args)
        digests[name] = output_digest(tmp_path / name)
    reference = manifests["direct"]
    assert reference["accounting"]["balanced"]
    stages = reference["accounting"]["stages"]
    for stage in ("read", "filter", "dedup"):  # the build really drops at these stages
        assert any(g["dropped"] for g in stages[stage].values()), stage
    assert len(reference["shards"]) > 2
    assert digests["multi_processing"] == digests["direct"]
    assert digests["dask"] == digests["direct"]
    assert digests["dask p2p"] == digests["direct"]
    assert manifests["dask"]["run"]["runner"] == RUNNER_ALIASES["DaskRunner"]
    # every runner reports the profile; documents through each per-document stage are the same
    profiles = {name: m["run"]["profile"]["stages"] for name, m in manifests.items()}
    document_stages = [s for s in profiles["direct"] if s in ("read", "normalize") or s.startswith("filter.")]
    assert len(document_stages) > 4
    for name, stages in profiles.items():
        assert set(stages) == set(profiles["direct"]), name
        assert [stages[s]["elements"] for s in document_stages] == [
            profiles["direct"][s]["elements"] for s in document_stages], name
    # the P2P groupings' items and bytes, counted by the Dask runner only: exact dedup's grouping a
    # node per document; a later document's candidates and a document's requests for its payload
    # travel in lists per id group, the payloads' join a payload and one merged request per
    # document; verification's chunks a task per later document and fewer payload copies than
    # candidate pairs (a cluster's pairs meet in one chunk, each payload sent to it once)
    moved = manifests["dask p2p"]["run"]["groupings"]
    near = reference["dedup"]["near"]
    pairs = sum(v["candidate_pairs"] for v in near.values())
    signed = sum(v["documents"] for v in near.values())
    assert all(v["candidate_pairs"] > 0 and v["removed"] > 0 for v in near.values())
    candidates = moved["Dedup/Decide/Near/GroupCandidates/GroupByKey"]["items"]
    requests = moved["Dedup/Decide/Near/GroupRequests/GroupByKey"]["items"]
    joined = moved["Dedup/Decide/Near/JoinPayloads/CoGroupByKeyImpl/GroupByKey/GroupByKey"]["items"]
    chunked = moved["Dedup/Decide/Near/GroupChunks/CoGroupByKeyImpl/GroupByKey/GroupByKey"]["items"]
    assert 0 < candidates < pairs and 0 < requests < pairs
    assert signed < joined <= 2 * signed
    # a chunk's elements: a task per later document (at least one per verified group) and its
    # payload copies, fewer than the candidate pairs
    groups = sum(v["verify_groups"] for v in near.values())
    assert 0 < groups <= pairs and 0 < chunked - groups < pairs
    dedup_in = sum(g["in"]["docs"] for g in reference["accounting"]["stages"]["dedup"].values())
    assert moved["Dedup/Decide/GroupByHash/GroupByKey"]["items"] == dedup_in > 0  # a node per document into dedup
    assert all(g["bytes"] > 0 for g in moved.values() if g["items"])
    assert "groupings" not in manifests["direct"]["run"] and "groupings" not in manifests["multi_processing"]["run"]


def test_the_scale_benchmark_states_its_output_per_input_document() -> None:
    """benchmarks/scale.py builds both sizes with the same tokens out per input document (a stated
    `mixture.total_tokens`), or, with 0, the largest total the sources' caps allow."""
    from benchmarks.scale import TOKENS_OUT_PER_DOC, build_config
    from lemur_corpus.config import parse_config

    inputs = {"code": ["code-000.jsonl.zst"], "text": ["text-000.jsonl.zst"]}
    for count in (62_500, 250_000):
        assert parse_config(build_config(inputs, count)).mixture.total_tokens == TOKENS_OUT_PER_DOC * count
    assert parse_config(build_config(inputs, 1000, tokens_out_per_doc=0)).mixture.total_tokens is None


@pytest.mark.slow
def test_a_real_dask_cluster_over_tcp_writes_the_direct_runners_bytes(tmp_path: Path) -> None:
    """`dask scheduler` and two `dask worker` processes (benchmarks/dask_cluster.py), reached only through
    `--dask_client_address`, every grouping through P2P: shards, drop logs and manifest (less its run
    section) equal DirectRunner's."""
    pytest.importorskip("dask.distributed")
    from benchmarks.dask_cluster import DaskCluster

    config = slice_config(code_rows=150, web_rows=60, shards={"target_tokens": 80_000})
    run_build(config, str(tmp_path / "direct"))
    with DaskCluster(workers=2) as cluster:
        assert cluster.address.startswith("tcp://127.0.0.1:")
        with cluster.memory_sampled(interval_s=0.2) as dask_memory, \
                cluster.rss_by_running_stage(interval_s=0.005) as running, cluster.gc_timed() as collected:
            manifest = run_build(config, str(tmp_path / "cluster"), [
                DASK, f"--dask_client_address={cluster.address}", "--dask_shuffle=p2p"])  # over TCP, the P2P way
        stats = cluster.worker_stats()
    assert all(w["cpu_s"] > 1 for w in stats)  # both workers did work
    # Dask's account of the run (what benchmarks/scale.py prints): the workers held task results
    assert set(dask_memory) == {"managed", "spilled", "unmanaged"} and dask_memory["managed"] > 0
    # and each worker's memory by the stage it ran: the build's own stages, under the exact peak
    assert sorted(running) == ["worker-0", "worker-1"]
    for (name, worker), exact in zip(sorted(running.items()), stats, strict=True):
        assert 100 < worker["peak_mib"] <= exact["peak_rss_mib"] + 1, name
        assert worker["stage"] in worker["by_stage"] and worker["peak_mib"] == max(worker["by_stage"].values())
        # the rises add up to the way from the first sample to the highest one, each by a stage that ran
        assert set(worker["rises_mib"]) <= set(worker["by_stage"]), name
        assert sum(worker["rises_mib"].values()) == pytest.approx(worker["peak_mib"] - worker["start_mib"], abs=1e-6)
    # and each worker's garbage collector, timed: every collection, the full ones among them
    assert sorted(collected) == ["worker-0", "worker-1"]
    for worker in collected.values():
        assert worker["collections"] >= worker["full_collections"] >= 0 and worker["collections"] > 0
        assert worker["gc_s"] >= worker["full_gc_s"] >= 0 and worker["gc_s"] > 0
    stages = {stage for worker in running.values() for stage in worker["by_stage"]}
    assert any("/" in stage for stage in stages), stages  # a Beam transform's label, e.g. Read/Read/Run
    assert output_digest(tmp_path / "cluster") == output_digest(tmp_path / "direct")
    assert len(manifest["shards"]) > 1 and manifest["run"]["profile"]["stages"]["tokenize"]["cpu_s"] > 0


@pytest.mark.slow
def test_variants_give_identical_bytes_on_every_runner(matrix_config, dask_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A build with variants: the variant folders (hard-linked token bytes, index shards, manifests) are
    the same bytes on every runner, like the main mixture."""
    config = matrix_config.model_copy(update={"variants": [
        VariantConfig(name="r4", code_text_ratio=4), VariantConfig(name="r40", code_text_ratio=40)]})
    runs = {
        "direct": [],
        "multi_processing": MULTI_PROCESSING,
        "dask": [DASK, f"--dask_client_address={dask_cluster.scheduler_address}"],
    }
    digests = {}
    for name, args in runs.items():
        manifest = run_build(config, str(tmp_path / name), args)
        assert [v["name"] for v in manifest["variants"]] == ["r4", "r40"]
        digests[name] = output_digest(tmp_path / name)
    assert any(path.startswith("variants/r40/shards/") for path in digests["direct"])
    assert digests["multi_processing"] == digests["direct"]
    assert digests["dask"] == digests["direct"]


@pytest.mark.slow
def test_dedup_command_on_a_local_dask_cluster(tmp_path: Path) -> None:
    """`corpus dedup -- --runner=DaskRunner --dask_workers=2`: the runner starts its own LocalCluster
    (no scheduler named) and the outputs are the DirectRunner's, byte for byte."""
    path = str(shared_path("dups", "code_forks.docs.jsonl.zst"))
    outputs = {}
    for name, beam_args in {"direct": [], "dask": ["--", DASK, "--dask_workers=2"]}.items():
        out = tmp_path / name
        assert main(["dedup", "--input", path, "--kind", "code", "--out", str(out), "--shards", "2", *beam_args]) == 0
        outputs[name] = {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}
    assert outputs["dask"] == outputs["direct"]
    assert json.loads(outputs["direct"]["summary.json"])["near_removed"] > 0


@pytest.mark.slow
def test_a_dask_build_prints_its_own_lines_not_the_schedulers(tmp_path: Path) -> None:
    """A new process's `corpus dedup -- --runner=DaskRunner --dask_workers=2` (distributed imported
    after the CLI set its loggers up): stderr has the command's lines, none of the LocalCluster's
    routine ones (its start, each P2P shuffle's warnings)."""
    import subprocess
    import sys

    path = str(shared_path("dups", "code_forks.docs.jsonl.zst"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    done = subprocess.run([sys.executable, "-m", "lemur_corpus.cli", "dedup", "--input", path, "--kind", "code",
                           "--out", str(tmp_path / "out"), "--shards", "2", "--", DASK, "--dask_workers=2"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "dask: started a LocalCluster" in done.stderr
    for routine in ("Shuffle", "Scheduler at", "Nanny", "Register worker"):
        assert routine not in done.stderr, done.stderr[-2000:]


def _tallied_per_bundle(tmp_path: Path, items: list, tally: beam.PTransform) -> list[tuple[int, dict]]:
    """(tallies emitted, the table they sum to) of `tally` over `items`, on the DirectRunner's two modes."""
    from lemur_corpus.pipelines.ledger import TableCombineFn

    found = []
    for name, args in {"in_memory": [], "multi_processing": MULTI_PROCESSING}.items():
        out = tmp_path / f"{name}.json"
        with beam_pipeline(PipelineOptions(args)) as p:
            tallies = p | beam.Create(items) | tally
            _ = (tallies | "Count" >> beam.combiners.Count.Globally()
                 | beam.Map(lambda n, t, path: path.write_text(json.dumps([n, sorted(t.items())])),
                            beam.pvalue.AsSingleton(tallies | beam.CombineGlobally(TableCombineFn())), out))
        count, table = json.loads(out.read_text())
        found.append((count, {tuple(k): tuple(v) for k, v in table}))
    return found


def test_documents_are_counted_per_bundle_with_the_same_sums(tmp_path: Path) -> None:
    """CountDocuments emits one Tally per group and bundle (not one per document); the accounting
    table it sums to is the per-document one, on the DirectRunner's two modes."""
    from lemur_corpus.accounting import Tally, add_tallies
    from lemur_corpus.pipelines.ledger import CountDocuments

    docs = [Document(id=f"d{i}", source=("a", "b", "c")[i % 3], kind="text", text="x" * (i + 1)) for i in range(60)]
    expected = add_tallies({}, [Tally("s", d.source, "in", 1, d.nbytes) for d in docs])
    for count, table in _tallied_per_bundle(tmp_path, docs, CountDocuments("s", "in")):
        assert table == expected
        assert 3 <= count < len(docs)  # a few bundles, three groups: far fewer than one per document


def test_drops_are_tallied_per_bundle_with_the_same_sums(tmp_path: Path) -> None:
    """The accounting tallies drops per (stage, group, reason) and bundle, not one per drop; the table
    is the per-drop one, on the DirectRunner's two modes."""
    from lemur_corpus.accounting import add_tallies, tally_drop
    from lemur_corpus.pipelines.ledger import TallyDropsFn

    drops = [Drop("filter", ("a", "b")[i % 2], ("short", "lid")[i % 3 == 0], 10 + i, f"d{i}") for i in range(60)]
    expected = add_tallies({}, [tally_drop(d) for d in drops])
    for count, table in _tallied_per_bundle(tmp_path, drops, beam.ParDo(TallyDropsFn())):
        assert table == expected
        assert 4 <= count < len(drops)  # a few bundles, four keys: far fewer than one per drop


def test_a_benchmark_worker_memory_limit_is_checked_before_any_worker_starts() -> None:
    """`--worker-memory-limit` takes what `dask worker --memory-limit` takes; a typo is an argparse error."""
    import argparse

    from benchmarks.common import memory_limit

    assert [memory_limit(v) for v in ("0", "auto", "1.5GiB", "800MB")] == ["0", "auto", "1.5GiB", "800MB"]
    for wrong in ("banana", "-3", "1.5 Gibibytes"):
        with pytest.raises(argparse.ArgumentTypeError, match="is not a memory size"):
            memory_limit(wrong)


def test_the_scale_benchmark_shows_the_groupings_that_moved_the_most_whatever_their_order() -> None:
    """A manifest read from its file has `run.groupings` sorted by name: the benchmark sorts by bytes."""
    from benchmarks.scale import GROUPINGS_SHOWN, largest_groupings

    moved = {f"G{i}/GroupByKey": {"items": i, "bytes": (i * 7919) % 101} for i in range(GROUPINGS_SHOWN + 4)}
    shown = [g["bytes"] for _, g in largest_groupings(dict(sorted(moved.items())))]
    assert shown == sorted((g["bytes"] for g in moved.values()), reverse=True)[:GROUPINGS_SHOWN]
