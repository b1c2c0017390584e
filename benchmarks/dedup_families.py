"""A seeded set of templated page families, made from the real web pages of ../shared/data/web.

Many pages of one site share its template: the menus, cookie banners and footers around the article.
Here a family's template is the real boilerplate of one page of `trafilatura_pages.wet` (its lines
that are not in the same page's extracted main text, `trafilatura_pages.main`): the lines before the
main text are the header, the lines after it the footer, cut to a seeded length. Each page of the
family is header + an article + footer; an article is a run of consecutive paragraphs of another real
page, of seeded length, so pages of one family resemble each other through the template alone, at
Jaccard from about 0.4 (long articles) to above 0.9 (short ones, where the template dominates). Some
pages are then edited (the edits of the labelled web_neardup set: typos, a dropped or swapped
paragraph, changed numbers, an appended paragraph, a truncated end) and some edits edited again, so
the set has chains A ~ A' ~ A'' whose ends may be below the threshold.

Ids are seeded random hex strings: their order says nothing about which pages are related (real
corpora's ids do not either). No label is written: the truth is the exact Jaccard of word 5-grams,
as `../shared/tools/eval_dedup.py` computes it.

    .venv/bin/python benchmarks/dedup_families.py OUT.jsonl [--families 30] [--seed 13]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import DEFAULT_DATA, read_jsonl  # noqa: E402


def templates(data: Path) -> list[tuple[list[str], list[str]]]:
    """(header lines, footer lines) of every page whose boilerplate is long enough to be a template."""
    main = {r["id"]: r["text"] for r in read_jsonl(data / "web" / "trafilatura_pages.main.jsonl.zst")}
    out = []
    for record in read_jsonl(data / "web" / "trafilatura_pages.wet.jsonl.zst"):
        article = {line.strip() for line in main.get(record["id"], "").split("\n") if line.strip()}
        lines = [line.strip() for line in record["text"].split("\n") if line.strip()]
        inside = [i for i, line in enumerate(lines) if line in article]
        if not inside:
            continue
        header, footer = lines[: inside[0]], lines[inside[-1] + 1:]
        if sum(len(re.findall(r"\w+", line)) for line in header + footer) >= 150:
            out.append((header, footer))
    return out


def articles(data: Path) -> list[list[str]]:
    """The paragraphs of every real page's main text (pages of at least 6 paragraphs)."""
    pages = [[p for p in r["text"].split("\n") if len(p) > 40]
             for r in read_jsonl(data / "web" / "trafilatura_pages.main.jsonl.zst")]
    return [p for p in pages if len(p) >= 6]


def _cut(lines: list[str], words: int) -> list[str]:
    """The first lines of `lines` holding about `words` words."""
    out, count = [], 0
    for line in lines:
        if count >= words:
            break
        out.append(line)
        count += len(re.findall(r"\w+", line))
    return out


def edit(text: str, rng: random.Random, paragraphs: list[str]) -> str:
    """One edited copy (the edit kinds of web_neardup, at seeded strengths)."""
    parts = [p for p in text.split("\n") if p.strip()]
    if len(parts) > 4 and rng.random() < 0.3:
        del parts[rng.randrange(len(parts))]
    if len(parts) > 4 and rng.random() < 0.3:
        i = rng.randrange(len(parts) - 1)
        parts[i], parts[i + 1] = parts[i + 1], parts[i]
    if rng.random() < 0.15:
        parts = parts[: max(1, int(len(parts) * rng.uniform(0.8, 0.95)))]
    if rng.random() < 0.35:
        parts.insert(rng.randrange(len(parts) + 1), rng.choice(paragraphs))
    words = "\n".join(parts).split(" ")
    rate = rng.uniform(0.0, 0.04)
    for i, word in enumerate(words):
        if len(word) > 3 and rng.random() < rate:
            j = rng.randrange(len(word) - 1)
            words[i] = word[:j] + word[j + 1] + word[j] + word[j + 2:]
    out = " ".join(words)
    return re.sub(r"\d+", lambda m: str(int(m.group()) + 1), out) if rng.random() < 0.3 else out


def families(data: Path, count: int, seed: int) -> list[dict[str, str]]:
    """The documents (id, text, family) of `count` seeded template families."""
    rng = random.Random(seed)
    shells = templates(data)
    sources = articles(data)
    paragraphs = [p for page in sources for p in page]
    docs: list[dict[str, str]] = []
    used: set[str] = set()

    def new_id() -> str:
        while True:
            ident = f"{rng.getrandbits(48):012x}"
            if ident not in used:
                used.add(ident)
                return ident

    for family, (header, footer) in enumerate(rng.sample(shells, count)):
        template_words = rng.randint(200, 900)
        head = _cut(header, template_words // 2)
        foot = _cut(footer, template_words - sum(len(re.findall(r"\w+", h)) for h in head))
        pages = []
        for _ in range(rng.randint(15, 120)):
            source = rng.choice(sources)
            length = rng.choice([1, 1, 2, 2, 3, 4, 6, 8])
            start = rng.randrange(max(1, len(source) - length))
            text = "\n".join(head + source[start:start + length] + foot)
            pages.append(text)
            docs.append({"id": new_id(), "text": text, "family": f"t{family:03d}"})
        for text in pages:
            if rng.random() < 0.35:
                copy = edit(text, rng, paragraphs)
                docs.append({"id": new_id(), "text": copy, "family": f"t{family:03d}"})
                if rng.random() < 0.35:
                    docs.append({"id": new_id(), "text": edit(copy, rng, paragraphs), "family": f"t{family:03d}"})
    docs.sort(key=lambda d: d["id"])
    return docs


def write(path: Path, docs: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--families", type=int, default=30)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    docs = families(Path(args.data), args.families, args.seed)
    write(Path(args.out), docs)
    print(f"{len(docs)} documents in {args.families} families written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
