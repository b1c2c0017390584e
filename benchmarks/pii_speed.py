"""Throughput of the `pii` filter per core, and its cost next to the code-filter stage on the same files.

    .venv/bin/python benchmarks/pii_speed.py [--data ../shared/data] [--repeat 3]

Input: the real code sample (`code/code_sample.jsonl.zst`, 2,218 files, 25 MB) read, bucketed and
normalized as `corpus build` does (tests/code_samples.py), and the real web pages of `web/`. In one
process (one core), best of --repeat runs:

- the code-filter stage as it was before `pii` (language → license → heuristics → generated →
  data_like → syntax, every file entering the chain, as benchmarks/code_filters_speed.py measures it);
- `pii` alone on every one of the same files (an upper bound: in the chain it sees only the files the
  other filters kept), and on the web pages;
- for reference, detect-secrets 1.5.0's plugins line by line over the first 300 code files, when
  it is importable (not a dependency: `pip install detect-secrets==1.5.0` to see it).

The ratio pii / code-filter stage is what redaction adds to the stage (issue 15's target: <= 15%).
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
from lemur_corpus.filters.base import Filter, run_chain, setup_filters  # noqa: E402
from lemur_corpus.filters.code import CodeFiltersConfig, build_code_filters  # noqa: E402
from lemur_corpus.filters.pii import PiiConfig, PiiFilter  # noqa: E402
from tests.code_samples import stack_documents  # noqa: E402

BEFORE_PII = ["language", "license", "heuristics", "generated", "data_like", "syntax"]


def best_seconds(docs: list[Document], filters: list[Filter], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for doc in docs:
            run_chain(doc, filters)
        best = min(best, time.perf_counter() - start)
    return best


def detect_secrets_seconds(texts: list[str]) -> float | None:
    try:
        from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    except ImportError:
        return None
    plugins = [cls() for cls in get_mapping_from_secret_type_to_class().values()]
    start = time.perf_counter()
    for text in texts:
        for line in text.splitlines():
            for plugin in plugins:
                for _ in plugin.analyze_string(line):
                    pass
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"real sample data not found at {args.data} (pass --data or set LEMUR_SHARED_DATA)")
    code = stack_documents(args.data / "code" / "code_sample.jsonl.zst")
    code_mb = sum(d.nbytes for d in code) / 1e6
    web = [Document(id=f"web/{i}", source="refinedweb", kind="text", text=r["text"])
           for name in sorted((args.data / "web").glob("*.jsonl.zst")) for i, r in enumerate(read_jsonl(name))]
    web_mb = sum(d.nbytes for d in web) / 1e6

    chain = build_code_filters(CodeFiltersConfig(), only=BEFORE_PII)
    setup_filters(chain)
    pii: list[Filter] = [PiiFilter(PiiConfig())]
    stage = best_seconds(code, chain, args.repeat)
    alone = best_seconds(code, pii, args.repeat)
    text = best_seconds(web, pii, args.repeat)
    print(f"code-filter stage (six filters): {code_mb / stage:7.2f} MB/s per core  ({stage:.2f} s, {len(code)} files, "
          f"{code_mb:.1f} MB)")
    print(f"pii on the same code files     : {code_mb / alone:7.2f} MB/s per core  ({alone:.2f} s)")
    print(f"pii on web pages               : {web_mb / text:7.2f} MB/s per core  ({text:.2f} s, {len(web)} pages, "
          f"{web_mb:.1f} MB)")
    print(f"pii cost next to the code-filter stage: {100 * alone / stage:.1f}% of its time (target <= 15%)")
    sample = [d.text for d in code[:300]]
    sample_mb = sum(len(t.encode()) for t in sample) / 1e6
    reference = detect_secrets_seconds(sample)
    if reference is None:
        print("detect-secrets: not installed (pip install detect-secrets==1.5.0 to compare its plugins)")
    else:
        ours = best_seconds(code[:300], pii, 1)
        print(f"detect-secrets plugins, line by line: {sample_mb / reference:.2f} MB/s on the first 300 files; "
              f"pii {sample_mb / ours:.1f} MB/s on the same ({reference / ours:.0f}x)")


if __name__ == "__main__":
    main()
