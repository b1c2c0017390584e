"""Tokens per second per core: the pipeline's tokenize stage vs raw `tokenizers` on the same documents.

    .venv/bin/python benchmarks/tokenize_speed.py [--data ../shared/data] [--repeat 3]

Both sides run on one core (RAYON_NUM_THREADS=1 is set before `tokenizers` loads): the figure is per
core. "Pipeline" is the Beam stage as the build runs it (BatchElements → TokenizeFn with the tokenizer
loaded in DoFn.setup, EOS appended, the ids written to the bundle's spill file and their places out,
as a build waits for its mixture's plan) on DirectRunner, timed end to end including
Beam's own overhead; its documents are read from the data files inside the pipeline (a `Create` of
54 MB of documents would spend most of the time pickling them into the pipeline graph, which a real
build never does). "Raw" is `Tokenizer.encode_batch` on the same texts, already in memory, in the same
process. Target: pipeline >= 0.8x raw. The best of --repeat runs is reported for each.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import apache_beam as beam  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402

from benchmarks.common import DEFAULT_DATA, read_jsonl, real_texts  # noqa: E402
from lemur_corpus.config import TokenizerConfig  # noqa: E402
from lemur_corpus.document import Document  # noqa: E402
from lemur_corpus.pipelines.direct_runner import beam_pipeline  # noqa: E402
from lemur_corpus.pipelines.tokenize import Tokenize  # noqa: E402
from lemur_corpus.tokenizer import load_tokenizer, tokenizer_identity  # noqa: E402


class _Total(beam.CombineFn):
    def create_accumulator(self) -> int:
        return 0

    def add_input(self, acc: int, doc) -> int:  # type: ignore[no-untyped-def]
        return acc + doc.length

    def merge_accumulators(self, accs) -> int:  # type: ignore[no-untyped-def]
        return sum(accs)

    def extract_output(self, acc: int) -> int:
        return acc


def _documents(path: str) -> list[Document]:
    records = read_jsonl(Path(path))
    return [Document(id=f"{path}/{i}", source="bench", kind="code", text=r["content"] if "content" in r else r["text"])
            for i, r in enumerate(records)]


def pipeline_run(files: list[str], config: TokenizerConfig) -> tuple[float, int]:
    identity = tokenizer_identity(config)
    with tempfile.TemporaryDirectory() as tmp:
        result = os.path.join(tmp, "tokens")
        started = time.perf_counter()
        with beam_pipeline(PipelineOptions()) as p:
            docs = p | beam.Create(files, reshuffle=False) | beam.FlatMap(_documents)
            tokenized = docs | "Tokenize" >> Tokenize(config, identity, False, tmp)  # its spill files go with tmp
            _ = tokenized.docs | beam.CombineGlobally(_Total()) | beam.Map(_write, result)
        elapsed = time.perf_counter() - started
        with open(result) as handle:
            return elapsed, int(handle.read())


def _write(total: int, path: str) -> None:
    with open(path, "w") as handle:
        handle.write(str(total))


def raw_run(texts: list[str], config: TokenizerConfig, batch: int) -> tuple[float, int]:
    tokenizer = load_tokenizer(config)
    started = time.perf_counter()
    total = 0
    for i in range(0, len(texts), batch):
        total += sum(len(e.ids) for e in tokenizer.encode_batch(texts[i : i + batch], add_special_tokens=False))
    return time.perf_counter() - started, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=os.path.abspath, default=str(DEFAULT_DATA))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    data = Path(args.data)
    files = [str(data / "code" / "code_sample.jsonl.zst"), *map(str, sorted((data / "web").glob("*.jsonl.zst")))]
    texts = [doc.text for f in files for doc in _documents(f)]
    assert texts == real_texts(data)
    config = TokenizerConfig()
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    raw = min(raw_run(texts, config, config.batch_size) for _ in range(args.repeat))
    ours = min(pipeline_run(files, config) for _ in range(args.repeat))
    assert ours[1] == raw[1] + len(texts), "the pipeline must produce the raw tokens plus one EOS per document"
    raw_rate, our_rate = raw[1] / raw[0], ours[1] / ours[0]
    print(f"documents: {len(texts):,}  text: {mb:.1f} MB  tokens: {raw[1]:,} (+{len(texts):,} EOS)  threads: 1")
    print(f"raw tokenizers encode_batch: {raw_rate:,.0f} tokens/s/core ({raw[0]:.2f} s)")
    print(f"pipeline tokenize stage:     {our_rate:,.0f} tokens/s/core ({ours[0]:.2f} s, Beam DirectRunner)")
    print(f"ratio pipeline/raw: {our_rate / raw_rate:.2f}  (target >= 0.80)")


if __name__ == "__main__":
    main()
