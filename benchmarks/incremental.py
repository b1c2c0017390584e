"""Incremental dedup (#19): a chain of dumps, each deduplicated against what the earlier ones kept,
against one full dedup; and the cost of adding a dump against an index against recomputing all.

Data: real text from ../shared/data. The chain corpus is the labelled web_neardup set (1,622 real
pages, their real variants and edits) plus `--chain-docs` documents made of real paragraphs of the
trafilatura pages with seeded near-duplicate edits (`benchmarks/dedup_scale.py`'s generator: a new
document is 4-12 real paragraphs; with probability 0.3 one is an edited copy of a recent one). Each
document goes to one of `--dumps` dumps at random (seeded), so near-duplicates fall across dumps.

1. chain: dump 1 with `corpus dedup`; dump k with `corpus dedup --against` the merged index of dumps
   1..k-1 (`corpus dedup-index merge` after every dump, as a weekly DAG would). Measured:
   - agreement with ONE full dedup of all dumps under "earlier dumps win" (ids prefixed by the dump,
     keep = smallest_id): the share of documents of dumps 2..k with the same kept/removed decision;
   - `../shared/tools/eval_dedup.py`'s removal precision and pair recall over the union (the
     concatenated clusters files), against exact word 5-gram Jaccard >= 0.8; datasketch MinHashLSH
     on the same documents as the same run's baseline;
   - that no published document was removed (every earlier index is unchanged, byte for byte) and
     every removal is traceable (its `duplicate_of` is a document kept by the build it names).
2. cost: `--base` generated documents deduplicated once (the published index), then `--new-fraction`
   more documents (the same generator, continued: they copy recent base documents) added two ways
   in this run: against the base index, and by recomputing the dedup of base + new. Wall and CPU
   seconds of both, and their ratio (target <= 0.25).
3. index size: bytes of the base index (data files + header) per kept document (target <= 300).

    .venv/bin/python benchmarks/incremental.py [--base 200000] [--new-fraction 0.1] [--chain-docs 20000]
        [--dumps 4] [--seed 19] [--work DIR]

Everything runs on Beam's in-process DirectRunner (`corpus dedup`'s default).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import DEFAULT_DATA, read_jsonl  # noqa: E402
from benchmarks.dedup_scale import generate, read_pages  # noqa: E402

THRESHOLD = 0.8


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def dedup(inputs: list[Path], out: Path, against: list[Path] | None = None, build_id: str | None = None) -> dict:
    from lemur_corpus.dedup.config import DedupConfig
    from lemur_corpus.pipelines.dedup_files import run_dedup_files

    started, cpu = time.monotonic(), cpu_seconds()
    summary = run_dedup_files([str(p) for p in inputs], "text", str(out), DedupConfig(),
                              against=[str(a) for a in against or []], build_id=build_id)
    return {"summary": summary, "wall_s": time.monotonic() - started, "cpu_s": cpu_seconds() - cpu}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def digest_tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def load_eval(data: Path) -> Any:
    tool = data.parent / "tools" / "eval_dedup.py"
    spec = importlib.util.spec_from_file_location("eval_dedup", tool)
    if not tool.exists() or spec is None or spec.loader is None:
        raise SystemExit(f"the evaluation tool is not at {tool}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def chain_corpus(data: Path, work: Path, docs: int, dumps: int, seed: int) -> list[list[dict[str, Any]]]:
    real = [{"id": f"w-{d['id']}", "text": d["text"]} for d in read_jsonl(data / "dups" / "web_neardup.docs.jsonl.zst")]
    made = work / "chain-generated.jsonl.zst"
    generate(made, docs, 0.3, seed, read_pages(data))
    generated = [{"id": f"g-{r['id']}", "text": r["text"]} for r in read_jsonl(made)]
    rng = random.Random(seed)
    split: list[list[dict[str, Any]]] = [[] for _ in range(dumps)]
    for doc in real + generated:
        k = rng.randrange(dumps)
        split[k].append({"id": f"d{k + 1}-{doc['id']}", "text": doc["text"]})
    return split


def run_chain(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from lemur_corpus.cli import main as corpus

    dumps = chain_corpus(args.data, work, args.chain_docs, args.dumps, args.seed)
    files = [write_jsonl(work / f"dump{k + 1}.jsonl", rows) for k, rows in enumerate(dumps)]
    outs, merged, digests = [], None, {}
    chain_wall, unchanged_checks = 0.0, 0
    for k, path in enumerate(files):
        out = work / f"dump{k + 1}"
        result = dedup([path], out, [merged] if merged else None, build_id=f"dump{k + 1}")
        chain_wall += result["wall_s"]
        outs.append(out)
        for earlier in outs[:-1]:  # published outputs: untouched by every later run
            assert digest_tree(earlier / "dedup-index") == digests[earlier], f"{earlier} changed"
            unchanged_checks += 1
        digests[out] = digest_tree(out / "dedup-index")
        target = work / f"merged{k + 1}"
        inputs = [str(merged)] if merged else []
        assert corpus(["dedup-index", "merge", *inputs, str(out), "--out", str(target)]) == 0
        merged = target
    full = dedup(files, work / "full", build_id="full")
    rows = {}
    kept_by_build: dict[str, set[str]] = {}
    for k, out in enumerate(outs):
        for row in read_jsonl(out / "clusters.jsonl"):
            rows[row["id"]] = row
            if row["kept"]:
                kept_by_build.setdefault(f"dump{k + 1}", set()).add(row["id"])
    untraceable = [r["id"] for r in rows.values() if not r["kept"] and r.get("duplicate_of_build")
                   and r["duplicate_of"] not in kept_by_build.get(r["duplicate_of_build"], set())]
    untraceable += [r["id"] for r in rows.values() if not r["kept"] and "duplicate_of" not in r]
    from lemur_corpus.dedup.index import open_index, read_part, table_rows

    final = open_index(str(merged), "text")
    in_final = {row[2] for path, _ in final.files() for row in table_rows(read_part(Path(path).read_bytes(), path))}
    published = {i for ids in kept_by_build.values() for i in ids}
    full_rows = {r["id"]: r for r in read_jsonl(work / "full" / "clusters.jsonl")}
    later = [doc["id"] for rows_k in dumps[1:] for doc in rows_k]
    differ = [i for i in later if rows[i]["kept"] != full_rows[i]["kept"]]
    only_incremental = sum(1 for i in differ if not rows[i]["kept"])
    per_dump = {}
    for k, rows_k in enumerate(dumps[1:], start=2):
        ids = [d["id"] for d in rows_k]
        per_dump[f"dump{k}"] = round(sum(rows[i]["kept"] == full_rows[i]["kept"] for i in ids) / len(ids), 4)
    union = work / "union.clusters.jsonl"
    union.write_text("".join((out / "clusters.jsonl").read_text() for out in outs))
    evaluate = load_eval(args.data)
    docs = [doc for rows_k in dumps for doc in rows_k]
    sets = [evaluate.shingles(d["text"]) for d in docs]
    truth = evaluate.exact_pairs(sets, THRESHOLD)
    kept = [rows[d["id"]]["kept"] for d in docs]
    labels = [rows[d["id"]]["cluster"] for d in docs]
    ours = evaluate.removals(labels, kept, sets, truth, THRESHOLD)
    full_kept = [full_rows[d["id"]]["kept"] for d in docs]
    full_scores = evaluate.removals([full_rows[d["id"]]["cluster"] for d in docs], full_kept, sets, truth, THRESHOLD)
    base_labels = evaluate.datasketch_labels(sets, THRESHOLD)
    baseline = evaluate.removals(base_labels, [base_labels[i] == i for i in range(len(docs))], sets, truth, THRESHOLD)
    return {
        "documents": len(docs), "dumps": [len(d) for d in dumps], "new_documents": len(later),
        "agreement_with_full": round(1 - len(differ) / len(later), 4), "agreement_per_dump": per_dump,
        "disagreements": {"removed_only_incrementally": only_incremental,
                          "removed_only_in_full": len(differ) - only_incremental},
        "removed_against_earlier": sum(1 for r in rows.values() if r.get("duplicate_of_build")),
        "untraceable_removals": len(untraceable),
        "published_documents_missing_from_final_index": len(published - in_final),
        "final_index_documents": len(in_final), "earlier_index_unchanged_checks": unchanged_checks,
        "incremental_chain": ours, "one_full_dedup": full_scores, "datasketch_baseline": baseline,
        "chain_wall_s": round(chain_wall, 1), "full_wall_s": round(full["wall_s"], 1),
    }


def run_cost(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    new = max(1, int(args.base * args.new_fraction))
    made = work / "cost-all.jsonl.zst"
    generate(made, args.base + new, 0.3, args.seed + 1, read_pages(args.data))
    everything = read_jsonl(made)
    base_file = write_jsonl(work / "cost-base.jsonl", everything[: args.base])
    new_file = write_jsonl(work / "cost-new.jsonl", everything[args.base:])
    del everything
    initial = dedup([base_file], work / "base", build_id="base")
    index = work / "base" / "dedup-index" / "text"
    header = json.loads((index / "index.json").read_text())
    index_bytes = sum(p.stat().st_size for p in index.iterdir() if p.is_file())
    incremental = dedup([new_file], work / "increment", [work / "base"], build_id="increment")
    recompute = dedup([base_file, new_file], work / "recompute", build_id="recompute")
    return {
        "base_documents": args.base, "new_documents": new,
        "index": {"documents": header["documents"], "bytes": index_bytes,
                  "bytes_per_kept_document": round(index_bytes / max(1, header["documents"]), 1),
                  "data_bytes_per_kept_document": round(sum(f["bytes"] for f in header["files"])
                                                        / max(1, header["documents"]), 1)},
        "initial_dedup_of_base_s": round(initial["wall_s"], 1),
        "add_against_index": {"wall_s": round(incremental["wall_s"], 1), "cpu_s": round(incremental["cpu_s"], 1),
                              "removed_against_base": incremental["summary"]["against_removed"]},
        "recompute_all": {"wall_s": round(recompute["wall_s"], 1), "cpu_s": round(recompute["cpu_s"], 1)},
        "ratio_wall": round(incremental["wall_s"] / recompute["wall_s"], 3),
        "ratio_cpu": round(incremental["cpu_s"] / recompute["cpu_s"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", type=int, default=200_000, help="documents in the published index (cost part)")
    parser.add_argument("--new-fraction", type=float, default=0.1, help="new documents, as a share of --base")
    parser.add_argument("--chain-docs", type=int, default=20_000, help="generated documents added to web_neardup")
    parser.add_argument("--dumps", type=int, default=4)
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--parts", choices=("chain", "cost", "both"), default="both")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, default=None, help="keep the outputs here (default: a temporary folder)")
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"real sample data not found at {args.data} (pass --data or set LEMUR_SHARED_DATA)")
    import logging

    logging.getLogger("corpus").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        result: dict[str, Any] = {}
        if args.parts in ("chain", "both"):
            result["chain"] = run_chain(args, work)
            print(json.dumps({"chain": result["chain"]}), flush=True)
        if args.parts in ("cost", "both"):
            result["cost"] = run_cost(args, work)
            print(json.dumps({"cost": result["cost"]}), flush=True)
    if "chain" in result:
        c = result["chain"]
        ours, full, base = c["incremental_chain"], c["one_full_dedup"], c["datasketch_baseline"]
        print(f"chain of {len(c['dumps'])} dumps, {c['documents']:,} documents: agreement with one full dedup "
              f"(earlier dumps win) {c['agreement_with_full']:.4f} on {c['new_documents']:,} new documents; removal "
              f"precision {ours['removal_precision']:.4f} / pair recall {ours['pair_recall']:.4f} (full dedup "
              f"{full['removal_precision']:.4f} / {full['pair_recall']:.4f}; datasketch {base['removal_precision']:.4f}"
              f" / {base['pair_recall']:.4f}); untraceable removals {c['untraceable_removals']}, published documents "
              f"missing from the final index {c['published_documents_missing_from_final_index']}")
    if "cost" in result:
        c = result["cost"]
        print(f"adding {c['new_documents']:,} documents against an index of {c['base_documents']:,}: "
              f"{c['add_against_index']['wall_s']:.1f} s vs recomputing all {c['recompute_all']['wall_s']:.1f} s "
              f"= {c['ratio_wall']:.3f} (CPU {c['ratio_cpu']:.3f}); index {c['index']['bytes_per_kept_document']:.1f} "
              f"bytes per kept document")


if __name__ == "__main__":
    main()
