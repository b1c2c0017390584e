"""The language-ID filter's MB/s per core on real web pages, and what folding lines costs in it.

    .venv/bin/python benchmarks/lid_speed.py [--data ../shared/data] [--repeat 3]

The input is every page of `web/*.jsonl.zst` (English and many other languages, ~54 MB). fastText
predicts one line, so the filter folds a document's line breaks into spaces first
(`lid.fold_lines`). Two filters run over the same pages in one process, alternating, the best of
--repeat runs each: the filter as the build runs it, and the same filter folding with
`str.translate` and a mapping (how it folded before: CPython looks every character up in the
mapping). Both give the same verdicts (checked here); the ratio is what the fold costs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import DEFAULT_DATA, read_jsonl  # noqa: E402
from lemur_corpus.document import Document  # noqa: E402
from lemur_corpus.filters.text import lid  # noqa: E402
from lemur_corpus.filters.text.config import LanguageIdConfig  # noqa: E402

TRANSLATED_BREAKS = str.maketrans(dict.fromkeys(lid.LINE_BREAKS, " "))


class TranslateFoldFilter(lid.LanguageIdFilter):
    """The baseline: the filter folding lines with `str.translate` (the same line, slower)."""

    def predict(self, text: str) -> tuple[str, float]:
        return super().predict(text.translate(TRANSLATED_BREAKS))


def web_documents(data: Path) -> list[Document]:
    if not data.exists():
        raise SystemExit(f"real sample data not found at {data} (pass --data or set LEMUR_SHARED_DATA)")
    return [Document(id=f"{name.stem}/{i}", source="web", kind="text", text=r["text"])
            for name in sorted((data / "web").glob("*.jsonl.zst")) for i, r in enumerate(read_jsonl(name))]


def seconds(flt: lid.LanguageIdFilter, docs: list[Document]) -> tuple[float, list[tuple[bool, str]]]:
    started = time.process_time()
    verdicts = [flt(doc) for doc in docs]
    return time.process_time() - started, [(v.keep, v.reason) for v in verdicts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    docs = web_documents(args.data)
    megabytes = sum(d.nbytes for d in docs) / 1e6
    ours, baseline = lid.LanguageIdFilter(LanguageIdConfig()), TranslateFoldFilter(LanguageIdConfig())
    ours.setup()
    baseline.setup()
    best = {"ours": float("inf"), "translate": float("inf")}
    for _ in range(args.repeat):
        ours_s, ours_verdicts = seconds(ours, docs)
        baseline_s, baseline_verdicts = seconds(baseline, docs)
        if ours_verdicts != baseline_verdicts:
            raise SystemExit("the two folds gave different verdicts")
        best["ours"], best["translate"] = min(best["ours"], ours_s), min(best["translate"], baseline_s)
    print(f"{len(docs):,} web pages, {megabytes:.1f} MB; best of {args.repeat} (CPU seconds, one core):")
    print(f"  lid, lines folded by str.replace (the build):   {best['ours']:6.2f} s  "
          f"{megabytes / best['ours']:6.2f} MB/s")
    print(f"  lid, lines folded by str.translate (baseline):  {best['translate']:6.2f} s  "
          f"{megabytes / best['translate']:6.2f} MB/s")
    print(f"  speed-up x{best['translate'] / best['ours']:.2f} (the same verdicts)")


if __name__ == "__main__":
    main()
