"""Throughput of the whole code-filter stage on real code, with and without tree-sitter.

    .venv/bin/python benchmarks/code_filters_speed.py [--data ../shared/data] [--repeat 3]
    .venv/bin/python benchmarks/code_filters_speed.py --syntax-report [--sql-dir /usr/share/postgresql]

The input is the real sample `code/code_sample.jsonl.zst` (2,218 files, 25 MB), read, bucketed and
normalized as `corpus build` does, then run through `run_chain` in one process (one core), exactly as
`pipelines/filter.py: FilterFn` does per element. "With tree-sitter" is the default chain
(language → license → heuristics → generated → data_like → syntax); the baseline is the same chain
without `syntax`. MB/s counts the input bytes of every file entering the chain, so files dropped early
are cheap; the best of --repeat runs is reported, the three configurations run alternating. The
ratio says what syntax validation costs. "As a build runs it" is the default chain with
`filters.base.drop_signals_only` (what `pipelines/filter.py: FilterFn` does: a build writes only
a dropped document's signals, so the syntax filter skips its comment query for the files it keeps);
the run checks it gives the same verdicts.

`--syntax-report` prints the measurements behind the per-language thresholds in
`filters/code/config.py`: the unparsed share of valid files (the sample's files not labelled
generated/data, and the standard library), and how many truncated copies and Markdown-as-code
copies the syntax filter catches. `--sql-dir` adds valid SQL scripts from a folder (PostgreSQL's).
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import DEFAULT_DATA, read_jsonl  # noqa: E402
from lemur_corpus.document import Document  # noqa: E402
from lemur_corpus.filters.base import Filter, drop_signals_only, run_chain, setup_filters  # noqa: E402
from lemur_corpus.filters.code import CODE_FILTER_NAMES, CodeFiltersConfig, build_code_filters  # noqa: E402
from lemur_corpus.filters.code.config import SyntaxConfig  # noqa: E402
from lemur_corpus.filters.code.syntax import SyntaxFilter  # noqa: E402
from tests.code_samples import (  # noqa: E402
    stack_documents,
    stdlib_documents,
    truncate_in_open_block,
    truncate_mid_byte,
)


def chain_seconds(docs: list[Document], filters: list[Filter]) -> tuple[float, collections.Counter]:
    reasons: collections.Counter = collections.Counter()
    start = time.perf_counter()
    for doc in docs:
        reasons[run_chain(doc, filters).reason or "kept"] += 1
    return time.perf_counter() - start, reasons


def speed(data: Path, repeat: int) -> None:
    docs = stack_documents(data / "code" / "code_sample.jsonl.zst")
    megabytes = sum(d.nbytes for d in docs) / 1e6
    config = CodeFiltersConfig()
    without = [n for n in CODE_FILTER_NAMES if n != "syntax"]
    chains = {}
    for label, names in (("without tree-sitter", without), ("with tree-sitter", list(CODE_FILTER_NAMES)),
                         ("as a build runs it", list(CODE_FILTER_NAMES))):
        chains[label] = build_code_filters(config, only=names)
        setup_filters(chains[label])
    drop_signals_only(chains["as a build runs it"])  # what FilterFn does: kept files' signals are not written
    best = dict.fromkeys(chains, float("inf"))
    reasons: dict[str, collections.Counter] = {}
    for _ in range(repeat):  # alternating, so the machine's load drifts over all of them alike
        for label, filters in chains.items():
            seconds, reasons[label] = chain_seconds(docs, filters)
            best[label] = min(best[label], seconds)
    if reasons["with tree-sitter"] != reasons["as a build runs it"]:
        raise SystemExit("the build's chain gave other verdicts")
    for label, seconds in best.items():
        dropped = sum(v for k, v in reasons[label].items() if k != "kept")
        print(f"{label:20s}: {megabytes / seconds:7.2f} MB/s per core  ({seconds:.2f} s for {megabytes:.1f} MB, "
              f"{len(docs)} files, {dropped} dropped)")
    print(f"ratio with/without tree-sitter: {best['without tree-sitter'] / best['with tree-sitter']:.3f} "
          f"(tree-sitter costs {best['with tree-sitter'] / best['without tree-sitter']:.1f}x)")
    print(f"as a build runs it (comments measured only in the files dropped): "
          f"x{best['with tree-sitter'] / best['as a build runs it']:.2f} the chain's speed, the same verdicts")


def syntax_report(data: Path, sql_dir: Path | None) -> None:
    labels = {(r["hexsha"], r["repo"], r["path"]) for r in read_jsonl(data / "code" / "code_sample.labels.jsonl")
              if "labels" in r}
    docs = [d for d in stack_documents(data / "code" / "code_sample.jsonl.zst")
            if (d.meta["hexsha"], d.meta["repo"], d.meta["path"]) not in labels]
    docs += list(stdlib_documents())
    syntax = SyntaxFilter(SyntaxConfig())
    syntax.setup()
    valid: dict[str, list[float]] = collections.defaultdict(list)
    caught: dict[str, list[tuple[bool, bool]]] = collections.defaultdict(list)
    for doc in docs:
        language = syntax.grammar_language(doc)
        if language is None or "badsyntax" in doc.meta["path"]:
            continue
        verdict = syntax(doc)
        valid[language].append(verdict.signals.get("unparsed_share", 0.0))
        block = truncate_in_open_block(doc.text, doc.lang)
        if block:
            mid = syntax(doc.replace(text=truncate_mid_byte(doc.text)))
            caught[language].append((not syntax(doc.replace(text=block)).keep, not mid.keep))
    if sql_dir:
        for path in sorted(sql_dir.rglob("*.sql")):
            doc = Document(str(path), "sql", "code", path.read_text(errors="replace"), "SQL", {"path": str(path)})
            valid["SQL (" + str(sql_dir) + ")"].append(syntax(doc).signals.get("unparsed_share", 0.0))
    print(f"{'language':24s} {'files':>5s} {'p50':>6s} {'p99':>6s} {'max':>6s} {'limit':>6s} "
          f"{'cut-in-block caught':>20s} {'cut-mid caught':>15s}")
    for language in sorted(valid):
        shares = np.array(valid[language])
        cuts = caught.get(language, [])
        block_rate = np.mean([b for b, _ in cuts]) if cuts else float("nan")
        mid_rate = np.mean([m for _, m in cuts]) if cuts else float("nan")
        limit = syntax.threshold(language.split(" ")[0])
        print(f"{language:24s} {len(shares):5d} {np.percentile(shares, 50):6.3f} {np.percentile(shares, 99):6.3f} "
              f"{shares.max():6.3f} {limit:6.2f} {block_rate:20.3f} {mid_rate:15.3f}")
    prose = [d for d in stack_documents(data / "code" / "code_sample.jsonl.zst")
             if d.lang == "Markdown" and len(d.text) > 500]
    print(f"\nMarkdown prose ({len(prose)} files) labelled as each language, share dropped by the syntax filter:")
    for language in sorted(syntax.config.grammars):
        rate = np.mean([not syntax(d.replace(lang=language, meta={"path": ""})).keep for d in prose])
        print(f"  {language:12s} {rate:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration; the best counts (default: 3)")
    parser.add_argument("--syntax-report", action="store_true", help="print the syntax-threshold measurements instead")
    parser.add_argument("--sql-dir", type=Path, default=None, help="with --syntax-report: a folder of valid .sql files")
    args = parser.parse_args()
    sample = args.data / "code" / "code_sample.jsonl.zst"
    if not sample.exists():
        sys.exit(f"real sample not found: {sample} (pass --data)")
    if args.syntax_report:
        syntax_report(args.data, args.sql_dir)
    else:
        speed(args.data, args.repeat)


if __name__ == "__main__":
    main()
