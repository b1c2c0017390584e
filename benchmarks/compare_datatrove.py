"""Differential check and speed comparison of our text filters against datatrove's.

    .venv/bin/python benchmarks/compare_datatrove.py [--data ../shared/data/web] [--limit N] [--tokens]
    .venv/bin/python benchmarks/compare_datatrove.py --fuzz SEED [--fuzz-count N] [--variant zeros]
    .venv/bin/python benchmarks/compare_datatrove.py --record [SET ...]
    make bench-datatrove            # the first, creating .venv-datatrove first when it is missing

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
and whether the text C4 keeps is identical (`--tokens`: also whether both sides' words and per-line
sentence counts are identical). Then documents/s and MB/s per core (CPU time of one process, each
side running the three filters on every document in the same order) and the ratio.

`--fuzz SEED` compares on the seeded adversarial documents of `tests/text_fuzz.py` instead (windows
of the real pages included); `--record` writes datatrove's decisions (and token fingerprints) on the
sets of `tests/text_fuzz.py: RECORDED_SETS` to `tests/data/datatrove_decisions.json`, which
`tests/test_text_filters_datatrove.py` replays without datatrove. Our threshold 0 applies a rule and
null switches it off; datatrove switches a rule off at 0, so an upper bound of 0 reaches it as the
smallest positive float, the same rule there (`upper_bound`).
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATATROVE_VENV = ROOT / ".venv-datatrove"
DATATROVE_REQUIREMENTS = ["datatrove[io,processing]>=0.10,<0.11", "spacy>=3.8,<3.9"]
FILTERS = ("gopher_repetition", "gopher_quality", "c4")
"""Compared filters, in the order both sides run them on each document."""
HASH_CHARS = 8
"""Hex digits kept of a SHA-1 in the recording: enough to tell documents, texts and tokens apart."""


# ---------------------------------------------------------------------------------------------
# The worker: runs inside .venv-datatrove, imports only the standard library and datatrove.


def upper_bound(threshold: float | None) -> float | None:
    """Our `max_*` threshold as datatrove takes it. datatrove tests `if threshold and value > threshold`,
    so 0 switches its rule off; ours applies 0 ("drop when any") and switches off with null. The
    smallest positive float is the same rule there: every value these rules compare (counts, and
    ratios of counts to at most 2**30 tokens) that is above 0 is above it too. A `min_*` threshold
    of 0 needs no mapping: `value < 0` never holds, so 0 means off on both sides."""
    return 5e-324 if threshold == 0 else threshold


def _datatrove_filters(thresholds: dict) -> dict:
    from datatrove.pipeline.filters import C4QualityFilter, GopherQualityFilter, GopherRepetitionFilter

    q, r, c = thresholds["gopher_quality"], thresholds["gopher_repetition"], thresholds["c4"]
    return {
        "gopher_repetition": GopherRepetitionFilter(
            dup_line_frac=upper_bound(r["max_duplicate_line_fraction"]),
            dup_para_frac=upper_bound(r["max_duplicate_paragraph_fraction"]),
            dup_line_char_frac=upper_bound(r["max_duplicate_line_char_fraction"]),
            dup_para_char_frac=upper_bound(r["max_duplicate_paragraph_char_fraction"]),
            top_n_grams=tuple((int(n), f) for n, f in r["max_top_ngram_char_fraction"].items()),
            dup_n_grams=tuple((int(n), f) for n, f in r["max_duplicate_ngram_char_fraction"].items()),
        ),
        "gopher_quality": GopherQualityFilter(
            min_doc_words=q["min_words"], max_doc_words=upper_bound(q["max_words"]),
            min_avg_word_length=q["min_mean_word_length"],
            max_avg_word_length=upper_bound(q["max_mean_word_length"]),
            max_symbol_word_ratio=upper_bound(q["max_hash_word_ratio"]),
            max_bullet_lines_ratio=upper_bound(q["max_bullet_line_fraction"]),
            max_ellipsis_lines_ratio=upper_bound(q["max_ellipsis_line_fraction"]),
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


def text_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


def token_fingerprint(words: list[str], sentences: list[int]) -> list[str]:
    """Short hashes of a document's words and of the sentence counts of its non-blank lines: what the
    two sides tokenize, compared exactly (one side runs spaCy, the other our re-implementation)."""
    return [text_hash("\n".join(words))[:HASH_CHARS], text_hash(",".join(map(str, sentences)))[:HASH_CHARS]]


def worker(docs_path: str, thresholds_path: str, out_path: str, explain: str | None, tokens: bool = False) -> None:
    """Runs datatrove's filters on every document (or, with `explain`, returns datatrove's words and
    per-line sentence counts for the listed ids) and writes JSON lines; with `tokens`, each row also
    holds the `token_fingerprint` of spaCy's words and sentences."""
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
                row[name] = [kept, reason, text_hash(doc.text) if kept else None]
            if tokens:
                lines = [line.strip() for line in record["text"].splitlines() if line.strip()]
                row["tokens"] = token_fingerprint(split_into_words(record["text"]),
                                                  [len(split_into_sentences(line)) for line in lines])
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


def run_ours(docs: list[tuple[str, str]], fields: dict | None = None, tokens: bool = False
             ) -> tuple[dict[str, dict], dict[str, float], dict]:
    """Our three filters, each alone on every document (`fields`: TextFiltersConfig overrides); with
    `tokens`, the `token_fingerprint` of our words and sentences too."""
    from lemur_corpus.document import Document
    from lemur_corpus.filters.base import setup_filters
    from lemur_corpus.filters.text import TextFiltersConfig, build_text_filters
    from lemur_corpus.filters.text.words import sentence_count, spacy_tokens, word_tokens

    config = TextFiltersConfig.model_validate(fields or {})
    filters = dict(zip(FILTERS, build_text_filters(config, list(FILTERS)), strict=True))
    setup_filters(list(filters.values()))
    cpu = {name: 0.0 for name in FILTERS}
    decisions: dict[str, dict] = {}
    for ident, text in docs:
        doc = Document(id=ident, source="refinedweb", kind="text", text=text)
        row: dict[str, Any] = {}
        for name, f in filters.items():
            started = time.process_time()
            verdict = f(doc)
            cpu[name] += time.process_time() - started
            out_text = verdict.text if verdict.text is not None else text
            row[name] = [verdict.keep, verdict.reason, text_hash(out_text) if verdict.keep else None,
                         dict(verdict.signals)]
        if tokens:
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            row["tokens"] = token_fingerprint(word_tokens(text), [sentence_count(spacy_tokens(line)) for line in lines])
        decisions[ident] = row
    return decisions, cpu, config.model_dump(mode="json")


def run_datatrove(python: Path, docs_path: str, thresholds_path: str, explain_ids: list[str] | None = None,
                  tokens: bool = False) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.jsonl")
        command = [str(python), __file__, "--worker", docs_path, thresholds_path, out]
        if tokens:
            command.append("--tokens")
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
        from tests.text_fuzz import reference_repetition_reason

        rules = GopherRepetitionFilter(GopherRepetitionConfig.model_validate(config["gopher_repetition"]))
        redo = rules.judge(text, their_words)[0]
        with_bug = reference_repetition_reason(text, their_words, config["gopher_repetition"], join_key=True)
        return (f"{tokens}; our rules on spaCy's words: {'drop (' + redo + ')' if redo else 'keep'}; with "
                f"datatrove's n-gram key (words joined without spaces): "
                f"{'drop (' + with_bug + ')' if with_bug else 'keep'}")
    if name == "c4":
        return f"{tokens}; spaCy sentences per line (non-empty): {[s for s in detail.get('sentences', []) if s][:20]}"
    return tokens


def compare(python: Path, docs: list[tuple[str, str]], fields: dict | None = None, tokens: bool = False) -> dict:
    """Both sides on `docs`: our decisions and CPU time, datatrove's, the documents decided
    differently and datatrove's words and sentences for those (`tokens`: fingerprints of both
    sides' words and sentences for every document)."""
    ours, our_cpu, config = run_ours(docs, fields, tokens)
    with tempfile.TemporaryDirectory() as tmp:
        docs_path, thresholds_path = os.path.join(tmp, "docs.jsonl"), os.path.join(tmp, "thresholds.json")
        with open(docs_path, "w", encoding="utf-8") as handle:
            for ident, text in docs:
                handle.write(json.dumps({"id": ident, "text": text}, ensure_ascii=False) + "\n")
        Path(thresholds_path).write_text(json.dumps(config))
        rows = run_datatrove(python, docs_path, thresholds_path, tokens=tokens)
        trailer = rows.pop()
        theirs = {row["id"]: row for row in rows}
        differing = {name: [i for i, _ in docs if ours[i][name][0] != theirs[i][name][0]] for name in FILTERS}
        to_explain = sorted({i for ids in differing.values() for i in ids})
        details = {row["id"]: row for row in run_datatrove(python, docs_path, thresholds_path, to_explain)} \
            if to_explain else {}
    return {"ours": ours, "our_cpu": our_cpu, "config": config, "theirs": theirs, "trailer": trailer,
            "differing": differing, "details": details}


def report(title: str, docs: list[tuple[str, str]], result: dict, speed: bool) -> None:
    ours, theirs, differing, config = result["ours"], result["theirs"], result["differing"], result["config"]
    texts = dict(docs)
    n_bytes = sum(len(t.encode("utf-8", "surrogatepass")) for _, t in docs)
    versions = result["trailer"]["versions"]
    print(f"datatrove {versions['datatrove']} (spaCy {versions['spacy']}) vs lemur-corpus text filters, same "
          f"thresholds, each filter alone, on {title}: {len(docs):,} documents, {n_bytes / 1e6:.1f} MB")
    for note in result["trailer"]["untransferable"]:
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
    with_tokens = [i for i, _ in docs if "tokens" in ours[i] and "tokens" in theirs[i]]
    if with_tokens:
        same = [sum(ours[i]["tokens"][k] == theirs[i]["tokens"][k] for i in with_tokens) for k in (0, 1)]
        print(f"tokens: the words are identical for {same[0]:,} of {len(with_tokens):,} documents, the sentence "
              f"counts of every line for {same[1]:,}")
        for i in with_tokens:
            if ours[i]["tokens"] != theirs[i]["tokens"]:
                print(f"  tokenized differently: {i}")
    print()
    print("Documents decided differently:")
    if not any(differing.values()):
        print("  none")
    for name in FILTERS:
        for ident in differing[name]:
            mine, other = ours[ident][name], theirs[ident][name]
            print(f"  {name} {ident}: ours {'keep' if mine[0] else 'drop ' + mine[1]}, datatrove "
                  f"{'keep' if other[0] else 'drop ' + other[1]}")
            why = explain(name, ident, texts[ident], mine, other, result["details"].get(ident, {}), config)
            print(f"    why: {why}")
    if not speed:
        return
    print()
    print("Speed: CPU seconds of one process (per core), each side running the three filters on every "
          "document in the same order (measured on a shared machine: noisy)")
    print(f"{'filter':<18} {'datatrove docs/s':>17} {'MB/s':>7} {'ours docs/s':>12} {'MB/s':>7} {'ratio':>7}")
    our_cpu, their_cpu = result["our_cpu"], result["trailer"]["cpu"]
    for name in (*FILTERS, "all three"):
        mine = sum(our_cpu.values()) if name == "all three" else our_cpu[name]
        other = sum(their_cpu.values()) if name == "all three" else their_cpu[name]
        print(f"{name:<18} {len(docs) / other:>17,.0f} {n_bytes / 1e6 / other:>7.2f} {len(docs) / mine:>12,.0f} "
              f"{n_bytes / 1e6 / mine:>7.2f} {other / mine:>6.1f}x")


# ---------------------------------------------------------------------------------------------
# Generated sets and the recording the differential test replays (tests/test_text_filters_datatrove.py).

RECORDING = ROOT / "tests" / "data" / "datatrove_decisions.json"
RECORDING_FORMAT = 1


def fuzz_set_documents(fuzz_set: Any, pages: list[str]) -> list[tuple[str, str]]:
    from tests.text_fuzz import fuzz_documents

    return [(ident, text) for ident, _, text in fuzz_documents(fuzz_set.seed, fuzz_set.count, pages)
            if text is not None]


def recorded_row(text: str, row: dict, reasons: list[str]) -> str:
    """One document of the recording: `<text hash> <code per filter> <hash of the text C4 keeps or ->
    <words hash> <sentences hash>`; a code indexes the recording's `reasons` (0: kept); new reasons are
    appended to `reasons`."""
    codes = []
    for name in FILTERS:
        reason = "" if row[name][0] else row[name][1]
        if reason not in reasons:
            reasons.append(reason)
        codes.append(str(reasons.index(reason)))
    c4_text = row["c4"][2][:HASH_CHARS] if row["c4"][0] else "-"
    return " ".join([text_hash(text)[:HASH_CHARS], *codes, c4_text, *row["tokens"]])


def record(python: Path, data: Path, names: list[str], out: Path) -> None:
    """Generate each recorded set (all, or those in `names`), run datatrove on it, print the
    comparison and write datatrove's decisions into `out`, keeping the other sets already there.
    Never the texts: the test regenerates them from the seeds."""
    from tests.text_fuzz import GENERATOR_VERSION, RECORDED_SETS, variant_config, web_pages

    pages = web_pages(data)
    previous = json.loads(out.read_text()) if out.exists() else {}
    if previous.get("generator_version", GENERATOR_VERSION) != GENERATOR_VERSION:
        previous = {}  # recorded with another generator: every set is stale
    sets = {entry["name"]: entry for entry in previous.get("sets", [])}
    reasons: list[str] = previous.get("reasons", [""])
    versions: dict = {k: previous[k] for k in ("datatrove", "spacy") if k in previous}
    for fuzz_set in RECORDED_SETS:
        if names and fuzz_set.name not in names:
            continue
        docs = fuzz_set_documents(fuzz_set, pages)
        result = compare(python, docs, variant_config(fuzz_set.variant), tokens=True)
        report(f"generated set {fuzz_set.name!r} (seed {fuzz_set.seed}, {fuzz_set.variant} thresholds)", docs,
               result, speed=False)
        print()
        if versions and versions != result["trailer"]["versions"]:
            raise SystemExit(f"{out} holds sets recorded with {versions}; record them all again (no set names)")
        versions = result["trailer"]["versions"]
        sets[fuzz_set.name] = {
            "name": fuzz_set.name, "seed": fuzz_set.seed, "count": fuzz_set.count, "variant": fuzz_set.variant,
            "docs": [recorded_row(text, result["theirs"][ident], reasons) for ident, text in docs]}
    recording = {
        "about": "datatrove's decisions on the generated sets of tests/text_fuzz.py, each filter alone; written "
                 "by benchmarks/compare_datatrove.py --record, replayed by tests/test_text_filters_datatrove.py. "
                 "Per document: SHA-1 prefix of its text, then per filter an index into `reasons` (0: kept), "
                 "then the SHA-1 prefix of the text C4 keeps (- when dropped), of spaCy's words joined by "
                 "newlines, and of the sentence counts of its non-blank lines (stripped) joined by commas.",
        "format": RECORDING_FORMAT, "generator_version": GENERATOR_VERSION, **versions,
        "filters": list(FILTERS), "reasons": reasons,
        "sets": [sets[s.name] for s in RECORDED_SETS if s.name in sets]}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(recording, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out}: sets {', '.join(entry['name'] for entry in recording['sets'])}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "web"),
                        help="folder of web documents (default: ../shared/data/web)")
    parser.add_argument("--limit", type=int, default=None, help="compare only the first N documents")
    parser.add_argument("--venv", default=str(DATATROVE_VENV), help="datatrove's virtualenv (default: .venv-datatrove)")
    parser.add_argument("--setup", action="store_true", help="create the datatrove virtualenv when it is missing")
    parser.add_argument("--tokens", action="store_true",
                        help="also compare every document's words and per-line sentence counts (slower)")
    parser.add_argument("--fuzz", type=int, metavar="SEED", action="append",
                        help="compare on a generated set (tests/text_fuzz.py) instead of the real pages")
    parser.add_argument("--fuzz-count", type=int, default=3200, help="documents per generated set (default 3200)")
    parser.add_argument("--variant", default="default", help="thresholds of tests/text_fuzz.py: THRESHOLD_VARIANTS")
    parser.add_argument("--record", nargs="*", metavar="SET",
                        help=f"record datatrove's decisions on the sets of tests/text_fuzz.py: RECORDED_SETS (all, "
                             f"or those named) into {RECORDING.relative_to(ROOT)}")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # Beam's import-time notices are not part of the report
    venv = Path(args.venv).absolute()  # the worker runs in a temporary folder
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
    if args.record is not None:
        record(python, data, args.record, RECORDING)
        return 0
    if args.fuzz:
        from tests.text_fuzz import FuzzSet, variant_config, web_pages

        pages = web_pages(data)
        for seed in args.fuzz:
            docs = fuzz_set_documents(FuzzSet("cli", seed, args.fuzz_count), pages)[: args.limit]
            report(f"generated set seed {seed} ({args.variant} thresholds)", docs,
                   compare(python, docs, variant_config(args.variant), tokens=args.tokens), speed=True)
            print()
        return 0
    docs = read_documents(data, args.limit)
    report(str(data), docs, compare(python, docs, tokens=args.tokens), speed=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        explain_path = sys.argv[sys.argv.index("--explain") + 1] if "--explain" in sys.argv else None
        worker(sys.argv[2], sys.argv[3], sys.argv[4], explain_path, tokens="--tokens" in sys.argv)
        sys.exit(0)
    sys.exit(main())
