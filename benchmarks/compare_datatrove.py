"""Differential check and speed comparison of our text filters against datatrove's.

    .venv/bin/python benchmarks/compare_datatrove.py [--data ../shared/data/web] [--limit N]
    make bench-datatrove            # the same, creating .venv-datatrove first when it is missing

datatrove pins versions our environment cannot take, so it lives in its own virtualenv
(`.venv-datatrove`, created by `--setup` or `make bench-datatrove` with
`pip install 'datatrove[io,processing]>=0.10,<0.11' 'spacy>=3.8,<3.9'`; both are on PyPI and need no
model download: datatrove's English word tokenizer is `spacy.blank("en")` plus the rule-based
`sentencizer`). This script runs in our `.venv`, reads every document of `../shared/data/web` (JSONL
files and WARC records) with the project's readers, normalizes them as the build does, and hands the
very same texts to a worker process in the datatrove virtualenv (this file, run with `--worker`).

For GopherQualityFilter, GopherRepetitionFilter and C4QualityFilter, run with our thresholds, it
prints per filter the keep/drop agreement, the documents decided differently with an explanation of
each (recomputed on datatrove's own tokens, to tell a tokenizer difference from a rule difference),
and whether the text C4 keeps is identical. Then documents/s and MB/s per core (CPU time of one
process, each side running the three filters on every document in the same order) and the ratio.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATATROVE_VENV = ROOT / ".venv-datatrove"
DATATROVE_REQUIREMENTS = ["datatrove[io,processing]>=0.10,<0.11", "spacy>=3.8,<3.9"]
FILTERS = ("gopher_repetition", "gopher_quality", "c4")
"""Compared filters, in the order both sides run them on each document."""


# ---------------------------------------------------------------------------------------------
# The worker: runs inside .venv-datatrove, imports only the standard library and datatrove.


def _datatrove_filters(thresholds: dict) -> dict:
    from datatrove.pipeline.filters import C4QualityFilter, GopherQualityFilter, GopherRepetitionFilter

    q, r, c = thresholds["gopher_quality"], thresholds["gopher_repetition"], thresholds["c4"]
    return {
        "gopher_repetition": GopherRepetitionFilter(
            dup_line_frac=r["max_duplicate_line_fraction"], dup_para_frac=r["max_duplicate_paragraph_fraction"],
            dup_line_char_frac=r["max_duplicate_line_char_fraction"],
            dup_para_char_frac=r["max_duplicate_paragraph_char_fraction"],
            top_n_grams=tuple((int(n), f) for n, f in r["max_top_ngram_char_fraction"].items()),
            dup_n_grams=tuple((int(n), f) for n, f in r["max_duplicate_ngram_char_fraction"].items()),
        ),
        "gopher_quality": GopherQualityFilter(
            min_doc_words=q["min_words"], max_doc_words=q["max_words"],
            min_avg_word_length=q["min_mean_word_length"], max_avg_word_length=q["max_mean_word_length"],
            max_symbol_word_ratio=q["max_hash_word_ratio"], max_bullet_lines_ratio=q["max_bullet_line_fraction"],
            max_ellipsis_lines_ratio=q["max_ellipsis_line_fraction"],
            max_non_alpha_words_ratio=q["min_alpha_word_fraction"], min_stop_words=q["min_stop_words"],
            stop_words=q["stop_words"],
        ),
        "c4": C4QualityFilter(
            split_paragraph=True, remove_citations=c["remove_citations"], filter_no_terminal_punct=True,
            min_num_sentences=c["min_sentences"] if c["min_sentences"] is not None else -1,
            min_words_per_line=c["min_words_per_line"] if c["min_words_per_line"] is not None else -1,
            max_word_length=c["max_word_length"] if c["max_word_length"] is not None else -1,
            filter_lorem_ipsum=c["drop_lorem_ipsum"], filter_javascript=c["remove_javascript_lines"],
            filter_curly_bracket=c["drop_curly_bracket"], filter_policy=bool(c["policy_phrases"]),
        ),
    }


def worker(docs_path: str, thresholds_path: str, out_path: str, explain: str | None) -> None:
    """Runs datatrove's filters on every document (or, with `explain`, returns datatrove's words and
    per-line sentence counts for the listed ids) and writes JSON lines."""
    from datatrove.data import Document
    from datatrove.utils.text import split_into_sentences, split_into_words

    thresholds = json.loads(Path(thresholds_path).read_text())
    filters = _datatrove_filters(thresholds)
    wanted = set(json.loads(Path(explain).read_text())) if explain else None
    with open(docs_path, encoding="utf-8") as handle:
        docs = [json.loads(line) for line in handle]
    split_into_words("Warm up the tokenizer. It loads once.")  # model-free spaCy: load before timing
    cpu = {name: 0.0 for name in filters}
    with open(out_path, "w", encoding="utf-8") as out:
        for record in docs:
            if wanted is not None:
                if record["id"] in wanted:
                    lines = [line.strip() for line in record["text"].splitlines()]
                    out.write(json.dumps({"id": record["id"], "words": split_into_words(record["text"]),
                                          "sentences": [len(split_into_sentences(line)) if line else 0
                                                        for line in lines]}) + "\n")
                continue
            row: dict = {"id": record["id"]}
            for name, f in filters.items():
                doc = Document(text=record["text"], id=record["id"])
                started = time.process_time()
                try:
                    result = f.filter(doc)
                except Exception as exc:  # noqa: BLE001 - reported as a decision, like a drop
                    result = (False, f"exception: {type(exc).__name__}: {exc}")
                cpu[name] += time.process_time() - started
                kept = result is True or (isinstance(result, tuple) and result[0])
                reason = "" if kept else (result[1] if isinstance(result, tuple) else "")
                text_hash = hashlib.sha1(doc.text.encode("utf-8", "surrogatepass")).hexdigest() if kept else None
                row[name] = [kept, reason, text_hash]
            out.write(json.dumps(row) + "\n")
        if wanted is None:
            import spacy

            out.write(json.dumps({"cpu": cpu, "untransferable": untransferable(thresholds),
                                  "versions": {"datatrove": _version("datatrove"), "spacy": spacy.__version__}}) + "\n")


def untransferable(thresholds: dict) -> list[str]:
    """Our settings that datatrove's filters cannot take (its module constants or one shared
    threshold): the comparison is exact only when this list is empty."""
    from datatrove.pipeline.filters import c4_filters

    q, c = thresholds["gopher_quality"], thresholds["c4"]
    notes = []
    if q["max_hash_word_ratio"] != q["max_ellipsis_word_ratio"]:
        notes.append("gopher_quality: datatrove has one symbol-to-word ratio for # and ellipses")
    if tuple(c["terminal_punctuation"]) != tuple(c4_filters.END_PUNCTUATION):
        notes.append("c4.terminal_punctuation differs from datatrove's END_PUNCTUATION")
    if c["policy_phrases"] and list(c["policy_phrases"]) != list(c4_filters.POLICY_SUBSTRINGS):
        notes.append("c4.policy_phrases differ from datatrove's POLICY_SUBSTRINGS")
    if c["bad_words_path"]:
        notes.append("c4.bad_words_path: datatrove's C4QualityFilter has no bad-words rule")
    return notes


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


# ---------------------------------------------------------------------------------------------
# The driver: our environment.


def setup_datatrove(venv: Path) -> Path:
    """Create the datatrove virtualenv (offline-capable: PyPI only) and return its python."""
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv} with {' '.join(DATATROVE_REQUIREMENTS)}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        *DATATROVE_REQUIREMENTS], check=True)
    return python


def read_documents(data: Path, limit: int | None) -> list[tuple[str, str]]:
    """(id, normalized text) of every document under `data`, read with the build's readers."""
    from lemur_corpus.config import BuildConfig, InputConfig, MixtureConfig, lemur_mixture_sources
    from lemur_corpus.document import Document
    from lemur_corpus.normalize import normalize_text
    from lemur_corpus.sources import plan_input, read_task

    files = sorted(p for p in data.rglob("*") if p.name.endswith((".jsonl.zst", ".jsonl", ".warc.gz", ".warc")))
    inputs = [InputConfig(name=f"f{i}", format="warc" if ".warc" in p.name else "jsonl", kind="text",
                          paths=[str(p)], source="refinedweb") for i, p in enumerate(files)]
    config = BuildConfig(name="compare", inputs=inputs, mixture=MixtureConfig(sources=lemur_mixture_sources()))
    docs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for inp, path in zip(inputs, files, strict=True):
        tasks, _ = plan_input(inp, config)
        for task in tasks:
            for item in read_task(task, config):
                if isinstance(item, Document):
                    ident = f"{path.name}/{item.id.split('/', 1)[1]}"
                    while ident in seen:  # a WARC may hold the same URL twice
                        ident += "+"
                    seen.add(ident)
                    docs.append((ident, normalize_text(item.text)))
    return docs[:limit] if limit else docs


def run_ours(docs: list[tuple[str, str]]) -> tuple[dict[str, dict], dict[str, float], dict]:
    from lemur_corpus.document import Document
    from lemur_corpus.filters.base import setup_filters
    from lemur_corpus.filters.text import TextFiltersConfig, build_text_filters

    config = TextFiltersConfig()
    filters = dict(zip(FILTERS, build_text_filters(config, list(FILTERS)), strict=True))
    setup_filters(list(filters.values()))
    cpu = {name: 0.0 for name in FILTERS}
    decisions: dict[str, dict] = {}
    for ident, text in docs:
        doc = Document(id=ident, source="refinedweb", kind="text", text=text)
        row = {}
        for name, f in filters.items():
            started = time.process_time()
            verdict = f(doc)
            cpu[name] += time.process_time() - started
            out_text = verdict.text if verdict.text is not None else text
            text_hash = hashlib.sha1(out_text.encode("utf-8", "surrogatepass")).hexdigest() if verdict.keep else None
            row[name] = [verdict.keep, verdict.reason, text_hash, dict(verdict.signals)]
        decisions[ident] = row
    return decisions, cpu, config.model_dump(mode="json")


def run_datatrove(python: Path, docs_path: str, thresholds_path: str, explain_ids: list[str] | None = None
                  ) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.jsonl")
        command = [str(python), __file__, "--worker", docs_path, thresholds_path, out]
        if explain_ids is not None:
            ids_path = os.path.join(tmp, "ids.json")
            Path(ids_path).write_text(json.dumps(explain_ids))
            command += ["--explain", ids_path]
        subprocess.run(command, check=True, cwd=tmp)
        with open(out, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle]


def explain(name: str, ident: str, text: str, ours: list, theirs: list, detail: dict, config: dict) -> str:
    """Why the two sides decided differently, recomputed on datatrove's own words where it can."""
    from lemur_corpus.filters.text.config import GopherQualityConfig
    from lemur_corpus.filters.text.gopher import quality_reason, quality_signals
    from lemur_corpus.filters.text.words import word_tokens

    ours_words, their_words = word_tokens(text), detail.get("words", [])
    if ours_words != their_words:
        first = next((i for i, (a, b) in enumerate(zip(ours_words, their_words, strict=False)) if a != b),
                     min(len(ours_words), len(their_words)))
        tokens = (f"the word tokenizers differ ({len(ours_words)} vs {len(their_words)} tokens; first at "
                  f"#{first}: ours {ours_words[first:first + 3]} vs spaCy {their_words[first:first + 3]})")
    else:
        tokens = "the same words on both sides"
    if name == "gopher_quality":
        cfg = GopherQualityConfig.model_validate(config["gopher_quality"])
        redo = quality_reason(quality_signals(text, their_words, frozenset(cfg.stop_words)), cfg)
        verdict = "drop (" + redo + ")" if redo else "keep"
        return f"{tokens}; our rules on spaCy's words: {verdict}"
    if name == "gopher_repetition" and text:
        from lemur_corpus.filters.text.config import GopherRepetitionConfig
        from lemur_corpus.filters.text.gopher import GopherRepetitionFilter

        rules = GopherRepetitionFilter(GopherRepetitionConfig.model_validate(config["gopher_repetition"]))
        redo = rules.judge(text, their_words)[0]
        return f"{tokens}; our rules on spaCy's words: {'drop (' + redo + ')' if redo else 'keep'}"
    if name == "c4":
        return f"{tokens}; spaCy sentences per line (non-empty): {[s for s in detail.get('sentences', []) if s][:20]}"
    return tokens


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "web"),
                        help="folder of web documents (default: ../shared/data/web)")
    parser.add_argument("--limit", type=int, default=None, help="compare only the first N documents")
    parser.add_argument("--venv", default=str(DATATROVE_VENV), help="datatrove's virtualenv (default: .venv-datatrove)")
    parser.add_argument("--setup", action="store_true", help="create the datatrove virtualenv when it is missing")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # Beam's import-time notices are not part of the report
    venv = Path(args.venv)
    if args.setup:
        python = setup_datatrove(venv)
    else:
        python = venv / "bin" / "python"
        if not python.exists():
            print(f"{python} not found: run `make bench-datatrove` or add --setup", file=sys.stderr)
            return 2
    sys.path.insert(0, str(ROOT))
    data = Path(args.data)
    if not data.is_dir():
        print(f"{data}: not a folder (the real data lives in ../shared/data)", file=sys.stderr)
        return 2

    docs = read_documents(data, args.limit)
    texts = dict(docs)
    n_bytes = sum(len(t.encode("utf-8", "surrogatepass")) for _, t in docs)
    ours, our_cpu, config = run_ours(docs)
    with tempfile.TemporaryDirectory() as tmp:
        docs_path, thresholds_path = os.path.join(tmp, "docs.jsonl"), os.path.join(tmp, "thresholds.json")
        with open(docs_path, "w", encoding="utf-8") as handle:
            for ident, text in docs:
                handle.write(json.dumps({"id": ident, "text": text}, ensure_ascii=False) + "\n")
        Path(thresholds_path).write_text(json.dumps(config))
        rows = run_datatrove(python, docs_path, thresholds_path)
        trailer = rows.pop()
        theirs = {row["id"]: row for row in rows}
        differing = {name: [i for i, _ in docs if ours[i][name][0] != theirs[i][name][0]] for name in FILTERS}
        to_explain = sorted({i for ids in differing.values() for i in ids})
        details = {row["id"]: row for row in run_datatrove(python, docs_path, thresholds_path, to_explain)} \
            if to_explain else {}

    versions = trailer["versions"]
    print(f"datatrove {versions['datatrove']} (spaCy {versions['spacy']}) vs lemur-corpus text filters, same "
          f"thresholds, on {data}: {len(docs):,} documents, {n_bytes / 1e6:.1f} MB")
    for note in trailer["untransferable"]:
        print(f"  not the same setting on both sides: {note}")
    print()
    print(f"{'filter':<18} {'agreement':>10} {'datatrove kept':>15} {'ours kept':>10} {'differ':>7}")
    for name in FILTERS:
        agree = len(docs) - len(differing[name])
        print(f"{name:<18} {agree / len(docs):>10.2%} {sum(theirs[i][name][0] for i, _ in docs):>15,} "
              f"{sum(ours[i][name][0] for i, _ in docs):>10,} {len(differing[name]):>7}")
    both = [i for i, _ in docs if ours[i]["c4"][0] and theirs[i]["c4"][0]]
    same_text = sum(ours[i]["c4"][2] == theirs[i]["c4"][2] for i in both)
    print(f"c4: the cleaned text is identical for {same_text:,} of the {len(both):,} documents both keep")
    print()
    print("Documents decided differently:")
    if not to_explain:
        print("  none")
    for name in FILTERS:
        for ident in differing[name]:
            mine, other = ours[ident][name], theirs[ident][name]
            print(f"  {name} {ident}: ours {'keep' if mine[0] else 'drop ' + mine[1]}, datatrove "
                  f"{'keep' if other[0] else 'drop ' + other[1]}")
            print(f"    why: {explain(name, ident, texts[ident], mine, other, details.get(ident, {}), config)}")
    print()
    print("Speed: CPU seconds of one process (per core), each side running the three filters on every "
          "document in the same order (measured on a shared machine: noisy)")
    print(f"{'filter':<18} {'datatrove docs/s':>17} {'MB/s':>7} {'ours docs/s':>12} {'MB/s':>7} {'ratio':>7}")
    their_cpu = trailer["cpu"]
    for name in (*FILTERS, "all three"):
        mine = sum(our_cpu.values()) if name == "all three" else our_cpu[name]
        other = sum(their_cpu.values()) if name == "all three" else their_cpu[name]
        print(f"{name:<18} {len(docs) / other:>17,.0f} {n_bytes / 1e6 / other:>7.2f} {len(docs) / mine:>12,.0f} "
              f"{n_bytes / 1e6 / mine:>7.2f} {other / mine:>6.1f}x")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        explain_path = sys.argv[sys.argv.index("--explain") + 1] if "--explain" in sys.argv else None
        worker(sys.argv[2], sys.argv[3], sys.argv[4], explain_path)
        sys.exit(0)
    sys.exit(main())
