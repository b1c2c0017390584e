"""Near-dedup quality, judged by what it removes: ours vs datasketch MinHashLSH in the same run.

Sets: the labelled sets of ../shared/data/dups (`web_neardup` text, `code_forks` code; `code_irplag`
and `text_clough_stevenson`, paraphrase-level probes, on request) and `families`, templated page
families generated from real pages with a fixed seed (`benchmarks/dedup_families.py`: many pages
sharing one site's real boilerplate, some edited, some edits edited again).

For each set and threshold t, ours is `corpus dedup` (the build's Beam transforms, the set's kind and
default settings except the threshold); its `clusters.jsonl` is scored by `../shared/tools/eval_dedup.py`,
which also runs datasketch MinHashLSH (256 permutations, the same threshold, union-find components,
smallest index kept) on the same documents. Truth is exact Jaccard of word 5-grams >= t:

- removal precision: share of removed documents that have a kept document with J >= t;
- pair recall: share of true pairs of which at least one document was removed;
- F1 of the two, ours and datasketch's, and their ratio.

Code sets are also run with code-token shingles (`tokens: code`: operator characters are tokens
too), next to the default word shingles (the definition the truth and the baseline use): the gap
between the two is the shingle definition, not the method. Also printed: `twin precision`, the share
of our removals whose named `duplicate_of` has J >= t with them (the provenance is right, not just
some kept neighbour), and for labelled sets the same two views against the labels (labelled
positives with a document removed; labelled negatives where one was removed naming the other). Our
wall time is the whole Beam pipeline on the DirectRunner (start-up included); datasketch's is
eval_dedup's MinHash + LSH + union-find in one process.

Targets (issue 13): at t = 0.8, removal precision >= 0.97 and pair recall >= 0.95 on every set; at
every t, our F1 not below datasketch's.

    .venv/bin/python benchmarks/dedup_quality.py [--data ../shared/data] [--thresholds 0.7 0.8 0.85]
        [--sets web_neardup code_forks families] [--eval ../shared/tools/eval_dedup.py]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import DEFAULT_DATA, read_jsonl  # noqa: E402
from benchmarks.dedup_families import families, write  # noqa: E402
from lemur_corpus.dedup.config import DedupConfig  # noqa: E402

DEFAULT_EVAL = REPO.parent / "shared" / "tools" / "eval_dedup.py"
TARGET_THRESHOLD, TARGET_PRECISION, TARGET_RECALL = 0.8, 0.97, 0.95


@dataclasses.dataclass(frozen=True)
class LabelledSet:
    kind: str
    text_field: str
    label: str | None
    """The pairs file's positive label; None: every listed pair is a positive (code_forks)."""


SETS = {
    "web_neardup": LabelledSet("text", "text", "is_near_dup"),
    "code_forks": LabelledSet("code", "content", None),
    "code_irplag": LabelledSet("code", "content", "is_derived"),
    "text_clough_stevenson": LabelledSet("text", "text", "is_derived"),
    "families": LabelledSet("text", "text", None),
}
"""`families` has no pairs file: it is generated, and judged by exact Jaccard alone."""


def docs_path(data: Path, name: str) -> Path:
    for suffix in (".docs.jsonl.zst", ".docs.jsonl"):
        if (data / "dups" / (name + suffix)).exists():
            return data / "dups" / (name + suffix)
    raise SystemExit(f"{name}: no docs file under {data / 'dups'}")


def w5(text: str) -> set[str]:
    """eval_dedup's shingles: word 5-grams of re.findall(r'\\w+', text.lower())."""
    words = re.findall(r"\w+", text.lower())
    return {" ".join(words[i:i + 5]) for i in range(max(1, len(words) - 4))} if words else set()


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def run_ours(path: Path, kind: str, threshold: float, out: Path, tokens: str | None = None,
             ) -> tuple[dict[str, dict], float]:
    from lemur_corpus.pipelines.dedup_files import run_dedup_files

    config = DedupConfig.model_validate({kind: {"threshold": threshold, **({"tokens": tokens} if tokens else {})}})
    started = time.monotonic()
    run_dedup_files([str(path)], kind, str(out), config, id_field="id", shards=1, overwrite=True)
    seconds = time.monotonic() - started
    rows = {row["id"]: row for row in read_jsonl(out / "clusters.jsonl")}
    return rows, seconds


def run_eval(tool: Path, path: Path, text_field: str, clusters: Path, threshold: float) -> dict:
    result = subprocess.run([sys.executable, str(tool), str(path), "id", text_field, str(clusters), str(threshold)],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def twin_precision(rows: dict[str, dict], grams: dict[str, set], threshold: float) -> float:
    """Share of removed documents whose named `duplicate_of` is kept and has J >= threshold with them."""
    removed = [r for r in rows.values() if not r["kept"]]
    good = sum(rows[r["duplicate_of"]]["kept"] and jaccard(grams[r["id"]], grams[r["duplicate_of"]]) >= threshold
               for r in removed)
    return good / len(removed) if removed else 1.0


def label_views(rows: dict[str, dict], pairs: list[dict], label: str | None) -> str:
    positives = [p for p in pairs if (bool(p[label]) if label else True)]
    negatives = [p for p in pairs if label and not p[label]]
    caught = sum(not (rows[p["a"]]["kept"] and rows[p["b"]]["kept"]) for p in positives)
    wrong = sum(rows[p["a"]].get("duplicate_of") == p["b"] or rows[p["b"]].get("duplicate_of") == p["a"]
                for p in negatives)
    return (f"vs label ({label or 'listed pair'}): {caught}/{len(positives)} positive pairs lost a document, "
            f"{wrong}/{len(negatives)} negative pairs removed one for the other")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.7, 0.8, 0.85])
    parser.add_argument("--sets", nargs="+", default=["web_neardup", "code_forks", "families"], choices=list(SETS))
    parser.add_argument("--eval", default=str(DEFAULT_EVAL), help="eval_dedup.py (../shared/tools)")
    parser.add_argument("--families", type=int, default=30, help="template families of the generated set")
    parser.add_argument("--seed", type=int, default=13, help="seed of the generated set")
    args = parser.parse_args()
    data, tool = Path(args.data), Path(args.eval)
    if not tool.exists():
        raise SystemExit(f"{tool}: eval_dedup.py not found (pass --eval)")
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets:
            spec = SETS[name]
            if name == "families":
                path = write(Path(tmp) / "families.jsonl", families(data, args.families, args.seed))
                pairs: list[dict] = []
            else:
                path = docs_path(data, name)
                pairs = read_jsonl(data / "dups" / f"{name}.pairs.jsonl")
            records = read_jsonl(path)
            grams = {str(r["id"]): w5(r[spec.text_field]) for r in records}
            print(f"\n{name}: {len(records)} documents, kind {spec.kind}"
                  + (f", {len(pairs)} labelled pairs" if pairs else f" ({args.families} families, seed {args.seed})"))
            for t in args.thresholds:
                # code sets also with code-token shingles, the alternative to the words the truth uses
                for variant in ([None, "code"] if spec.kind == "code" else [None]):
                    suffix = f" [{variant} shingles]" if variant else ""
                    out = Path(tmp) / f"{name}-{t}-{variant}"
                    rows, ours_s = run_ours(path, spec.kind, t, out, variant)
                    scored = run_eval(tool, path, spec.text_field, out / "clusters.jsonl", t)
                    ours, base = scored["ours"]["removals"], scored["datasketch"]["removals"]
                    true_pairs = scored["ours"]["clusters"]["true_pairs"]
                    for who, r, seconds in (("ours" + suffix, ours, ours_s), ("datasketch MinHashLSH", base,
                                                                                 scored["datasketch_seconds"])):
                        print(f"  t={t:.2f} {who:26s} removal precision {r['removal_precision']:.4f}  pair recall "
                              f"{r['pair_recall']:.4f}  F1 {r['f1']:.4f}  removed {r['removed']:5d} "
                              f"({true_pairs} true pairs)  {seconds:6.1f} s")
                    ratio = ours["f1"] / base["f1"] if base["f1"] else float("inf")
                    print(f"  t={t:.2f} ratio ours{suffix}/datasketch F1 {ratio:.3f}; twin precision (duplicate_of "
                          f"has J >= t) {twin_precision(rows, grams, t):.4f}"
                          + (f"; {label_views(rows, pairs, spec.label)}" if pairs else ""))
                    if variant:
                        continue  # the targets are for the default configuration
                    if ours["f1"] < base["f1"]:
                        failures.append(f"{name} t={t}: F1 {ours['f1']} < datasketch {base['f1']}")
                    if t == TARGET_THRESHOLD and (ours["removal_precision"] < TARGET_PRECISION
                                                  or ours["pair_recall"] < TARGET_RECALL):
                        failures.append(f"{name} t={t}: removal precision {ours['removal_precision']}, "
                                        f"pair recall {ours['pair_recall']}")
    verdict = "met" if not failures else "NOT met: " + "; ".join(failures)
    print(f"\ntargets (t={TARGET_THRESHOLD}: removal precision >= {TARGET_PRECISION}, pair recall >= {TARGET_RECALL} "
          f"on every set; F1 never below datasketch's): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
