"""Near-dedup quality on the labelled sets of ../shared/data/dups: ours vs datasketch MinHashLSH.

For each set and threshold t, ours is the `corpus dedup` pipeline (the build's Beam transforms, the
set's kind and its default settings except the threshold); the baseline is datasketch `MinHashLSH`
with the same num_perm, threshold and shingles, every document queried against the index, the
candidate pairs linked into connected components (what an LSH index alone gives). A listed pair
counts as predicted duplicate when both documents land in the same cluster. Every result is given
two ways: against exact `jaccard_w5 >= t` (the pairs' recorded value, re-computed here to check our
word shingles are that definition) and against the set's label (`is_near_dup`; `is_derived`; for
code_forks every listed pair is a file and its fork's version of it). Code sets are also run with
word shingles on both sides (the README's reference configuration, and jaccard_w5's own definition),
next to the default code-token shingles. `cluster precision` checks
what listed pairs cannot: every pair of documents that shares a predicted cluster, against its exact
jaccard_w5 computed here (connected components chain, so this is the stricter number).

    .venv/bin/python benchmarks/dedup_quality.py [--data ../shared/data] [--thresholds 0.7 0.8]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import DEFAULT_DATA, read_jsonl  # noqa: E402
from lemur_corpus.dedup.clusters import connected_components  # noqa: E402
from lemur_corpus.dedup.config import DedupConfig, NearDedupConfig  # noqa: E402
from lemur_corpus.dedup.minhash import HASH_FUNCTIONS  # noqa: E402
from lemur_corpus.dedup.shingles import shingles  # noqa: E402

SETS = {  # name: (kind, label field or None when every listed pair is a positive)
    "web_neardup": ("text", "is_near_dup"),
    "code_forks": ("code", None),
    "code_irplag": ("code", "is_derived"),
    "text_clough_stevenson": ("text", "is_derived"),
}
TARGET_SETS = ("web_neardup", "code_forks")
TARGET_PRECISION, TARGET_RECALL = 0.97, 0.95


def docs_path(data: Path, name: str) -> Path:
    for suffix in (".docs.jsonl.zst", ".docs.jsonl"):
        if (data / "dups" / (name + suffix)).exists():
            return data / "dups" / (name + suffix)
    raise SystemExit(f"{name}: no docs file under {data / 'dups'}")


def text_of(record: dict) -> str:
    return record["text"] if "text" in record else record["content"]


def w5(text: str) -> set[tuple[str, ...]]:
    """The labelled sets' definition: word 5-grams of re.findall(r'\\w+', text.lower())."""
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i:i + 5]) for i in range(len(words) - 4)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


@dataclasses.dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, predicted: bool, truth: bool) -> None:
        self.tp += predicted and truth
        self.fp += predicted and not truth
        self.fn += truth and not predicted

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def line(self) -> str:
        return f"P={self.precision:.3f} R={self.recall:.3f} F1={self.f1:.3f}"


def ours_clusters(path: Path, kind: str, near: NearDedupConfig) -> dict[str, str]:
    from lemur_corpus.pipelines.dedup_files import run_dedup_files

    config = DedupConfig.model_validate({kind: near.model_dump()})
    with tempfile.TemporaryDirectory() as out:
        run_dedup_files([str(path)], kind, out, config, id_field="id", shards=1)
        rows = [json.loads(line) for line in (Path(out) / "clusters.jsonl").read_text().splitlines()]
    return {row["id"]: row["cluster"] for row in rows}


def datasketch_clusters(records: list[dict], near: NearDedupConfig, threshold: float) -> dict[str, str]:
    from datasketch import MinHash, MinHashLSH

    ids = [r["id"] for r in records]
    sets = [shingles(text_of(r), near.tokens, near.ngram, near.max_shingles) for r in records]
    minhashes = MinHash.bulk(sets, num_perm=near.num_perm, seed=near.seed, hashfunc=HASH_FUNCTIONS[near.hash])
    lsh = MinHashLSH(threshold=threshold, num_perm=near.num_perm)
    for doc_id, m, s in zip(ids, minhashes, sets, strict=True):
        if s:
            lsh.insert(doc_id, m)
    edges = [(doc_id, other) for doc_id, m, s in zip(ids, minhashes, sets, strict=True) if s
             for other in lsh.query(m) if other != doc_id]
    cluster = {doc_id: doc_id for doc_id in ids}
    for component in connected_components(edges):
        for member in component:
            cluster[member] = component[0]
    return cluster


def score(pairs: list[dict], cluster: dict[str, str], threshold: float, label: str | None) -> tuple[Score, Score]:
    by_jaccard, by_label = Score(), Score()
    for pair in pairs:
        predicted = cluster[pair["a"]] == cluster[pair["b"]]
        by_jaccard.add(predicted, pair["jaccard_w5"] >= threshold)
        by_label.add(predicted, bool(pair[label]) if label else True)
    return by_jaccard, by_label


def cluster_precision(cluster: dict[str, str], grams: dict[str, set], threshold: float) -> tuple[float, int]:
    """Share of co-clustered document pairs whose exact jaccard_w5 reaches the threshold."""
    members: dict[str, list[str]] = {}
    for doc_id, c in cluster.items():
        members.setdefault(c, []).append(doc_id)
    good = total = 0
    for group in members.values():
        for a, b in itertools.combinations(sorted(group), 2):
            total += 1
            good += jaccard(grams[a], grams[b]) >= threshold
    return (good / total if total else 1.0), total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.7, 0.8])
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    args = parser.parse_args()
    data = Path(args.data)
    failures = []
    for name in args.sets:
        kind, label = SETS[name]
        path = docs_path(data, name)
        records = read_jsonl(path)
        pairs = read_jsonl(data / "dups" / f"{name}.pairs.jsonl")
        grams = {r["id"]: w5(text_of(r)) for r in records}
        reproduced = sum(abs(jaccard(grams[p["a"]], grams[p["b"]]) - p["jaccard_w5"]) < 5e-4 for p in pairs)
        near = DedupConfig().near(kind)
        print(f"\n{name}: {len(records)} docs, {len(pairs)} pairs, kind {kind} ({near.tokens} {near.ngram}-grams, "
              f"{near.num_perm} permutations); jaccard_w5 reproduced for {reproduced}/{len(pairs)} pairs")
        for t in args.thresholds:
            positives = sum(p["jaccard_w5"] >= t for p in pairs)
            settings = near.model_copy(update={"threshold": t})
            variants = [("", settings)]
            if kind == "code":  # also with the word shingles jaccard_w5 is defined on (the README reference)
                variants.append((" [word shingles]", settings.model_copy(update={"tokens": "words"})))
            for suffix, config in variants:
                started = time.monotonic()
                ours = ours_clusters(path, kind, config)
                ours_s = time.monotonic() - started
                started = time.monotonic()
                base = datasketch_clusters(records, config, t)
                base_s = time.monotonic() - started
                for who, cluster, seconds in (("ours" + suffix, ours, ours_s),
                                              ("datasketch MinHashLSH" + suffix, base, base_s)):
                    by_j, by_l = score(pairs, cluster, t, label)
                    purity, co = cluster_precision(cluster, grams, t)
                    print(f"  t={t:.2f} {who:37s} vs jaccard_w5>=t ({positives} pos): {by_j.line()} | "
                          f"vs label ({label or 'fork pair'}): {by_l.line()} | cluster precision {purity:.3f} "
                          f"over {co} co-clustered pairs | {seconds:.1f} s")
                ours_j, _ = score(pairs, ours, t, label)
                base_j, _ = score(pairs, base, t, label)
                print(f"  t={t:.2f} ratio ours/datasketch{suffix} vs jaccard_w5: precision "
                      f"{ours_j.precision / base_j.precision:.3f}, recall {ours_j.recall / base_j.recall:.3f}, "
                      f"F1 {ours_j.f1 / base_j.f1:.3f}")
                if name in TARGET_SETS and not suffix:
                    ok = (ours_j.precision >= TARGET_PRECISION and ours_j.recall >= TARGET_RECALL
                          and ours_j.precision >= base_j.precision and ours_j.recall >= base_j.recall)
                    if not ok:
                        failures.append(f"{name} t={t}")
    print("\ntargets (default settings, web_neardup and code_forks vs jaccard_w5: P>=0.97, R>=0.95, never below "
          "datasketch on the same shingles): "
          + ("met" if not failures else "NOT met for " + ", ".join(failures)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
