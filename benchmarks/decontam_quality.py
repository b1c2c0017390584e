"""Decontamination quality: benchmark items planted in real documents, in the styles copies take, and clean near misses.

    .venv/bin/python benchmarks/decontam_quality.py [--data ../shared/data] [--per-style 150] [--seed 14]
        [--index FILE --ngram 8 ...]   (default: the index shipped with the package, the default settings)

Hosts are real files and pages of ../shared/data (The Stack-layout code sample; the web pages'
extracted text). Items are drawn at random (seeded) from ../shared/data/benchmarks, never from the
index. Contaminated styles, one host and one item per document:

- module_verbatim: a HumanEval prompt and its solution, or an MBPP solution, as published, in a Python module;
- reindented: the same re-indented (2 spaces or tabs), blank lines dropped, quotes swapped, the docstring
  as `#` lines;
- solution_body: a HumanEval or MBPP solution body under another function name, in a Python module;
- task_as_comment: an MBPP task or a HumanEval docstring's prose as a comment (`#`, `//`, `/* */`, `--`)
  in a code file of any language;
- question_only: a GSM8K question, or an MMLU question, without its answer, in a web page;
- answer_rewritten: a GSM8K answer without its `<<...>>` annotations ("The answer is N." for `#### N`);
- mc_reformatted: an MMLU question with its choices under other labels (`(a)`, `A)`, `1.`, bullets, `A:`)
  and sometimes the answer, in a web page;
- other_language_prompt: a MultiPL-E prompt (18 languages) with a stub body, in a code file of its
  language where the sample has one;
- spider_query: a Spider question as a comment above its SQL query, in a code file;
- bbh_input: a BIG-Bench Hard task input and its target, in a web page.

Trivial items are left out where the issue says they must never match alone (the rules are the
constants below, independent of the index; the count of draws left out is printed per style):
solution bodies of fewer than 3 lines (`return a + b`), task texts and MMLU questions of fewer than 12
words ("Write a function to find the volume of a cuboid.", "What is the capital of France?"), Spider
pairs of fewer than 16 words, and the BBH tasks whose inputs are generated symbol strings. Clean
documents: every host unchanged, and near misses: a function with a benchmark's name and signature
but another docstring and body, a page that talks about the benchmarks, and ordinary arithmetic word
problems with worked answers.

Printed: recall per style (documents dropped), the share named with the right benchmark, false drops
per clean group, and the same run's baseline: exact substring matching of the planted text (what
bigcode's decontamination does), on the same documents.
Targets (issue 14): >= 95% dropped overall, >= 85% per style, right benchmark >= 95%, <= 0.5% clean dropped.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import DEFAULT_DATA  # noqa: E402
from lemur_corpus.document import Document  # noqa: E402
from lemur_corpus.filters.decontam import DecontamConfig, DecontamFilter  # noqa: E402
from lemur_corpus.normalize import normalize_text  # noqa: E402


def read_jsonl(path: Any) -> list[dict[str, Any]]:
    """Records as the package reads JSON Lines (only `\\n` ends one: U+2028 stays inside a string)."""
    import json

    from lemur_corpus.io import iter_lines

    return [json.loads(line) for _, line in iter_lines(str(path)) if line.strip()]


COMMENT = {"Python": "# ", "Shell": "# ", "Ruby": "# ", "YAML": "# ", "SQL": "-- ", "Java": "// ", "JavaScript": "// ",
           "TypeScript": "// ", "C": "// ", "C++": "// ", "Go": "// ", "Rust": "// ", "PHP": "// ", "C#": "// "}
MULTIPL_E_LANGUAGE = {"java": "Java", "cpp": "C++", "js": "JavaScript", "ts": "TypeScript", "go": "Go", "rs": "Rust",
                      "php": "PHP", "rb": "Ruby", "sh": "Shell", "cs": "C#"}
WORD = re.compile(r"\w+")
TRIVIAL_BODY_LINES = 3
"""A solution whose body has fewer lines (`return a + b`, `return len(s)`) is trivial: never evidence alone."""
TRIVIAL_WORDS = 12
"""A task text or question shorter than this ("Write a function to find the volume of a cuboid.") is trivial."""
TRIVIAL_SQL_WORDS = 16
"""A Spider question and query shorter than this together ("How many employees are there?" and
`SELECT count(*) FROM employee`) are trivial."""
BBH_SYMBOLIC = ("boolean_expressions", "multistep_arithmetic_two", "dyck_languages")
"""BBH tasks whose inputs are generated symbol strings (`not ( True ) and ( True ) is`): not evidence."""


def words(text: str) -> int:
    return len(WORD.findall(text))


def lines(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.strip())


class Data:
    def __init__(self, root: Any) -> None:
        bench = root / "benchmarks"
        self.items: dict[str, list[dict[str, Any]]] = {}
        for name in ("humaneval.jsonl", "mbpp.jsonl", "gsm8k_test.jsonl", "mmlu_test.jsonl.zst", "bbh.jsonl.zst",
                     "spider_dev.jsonl.zst", "multipl_e_humaneval.jsonl.zst"):
            for record in read_jsonl(bench / name):
                self.items.setdefault(record["benchmark"], []).append(record)
        self.code = [r for r in read_jsonl(root / "code" / "code_sample.jsonl.zst") if r["content"].strip()]
        self.python = [r for r in self.code if r["lang"] == "Python"]
        self.commented = [r for r in self.code if r["lang"] in COMMENT]
        self.web = [r for name in ("trafilatura_pages.main.jsonl.zst", "commoncrawl_samples.jsonl.zst",
                                   "debian_reference_multilingual.jsonl.zst")
                    for r in read_jsonl(root / "web" / name) if r["text"].strip()]
        self.english = [r for r in self.web if r.get("lang") == "en"] or self.web


def insert(host: str, block: str, rng: random.Random, code: bool) -> str:
    """`block` between two lines of `host` (at a blank line of a code file, where there is one)."""
    rows = host.split("\n")
    spots = [i for i, row in enumerate(rows) if not row.strip()] if code else list(range(len(rows) + 1))
    at = rng.choice(spots) if spots else len(rows)
    return "\n".join(rows[:at] + ["", block, ""] + rows[at:])


def reindent(code: str, rng: random.Random) -> str:
    unit = rng.choice(["  ", "\t"])
    out = []
    in_doc = False
    for row in code.replace("\r\n", "\n").split("\n"):
        if not row.strip():
            continue  # blank lines dropped
        stripped = row.lstrip(" \t")
        depth = (len(row) - len(stripped)) // 4 if row.startswith(" ") else len(row) - len(stripped)
        quote = stripped.count('"""') + stripped.count("'''")
        if quote or in_doc:  # docstring lines become # comments
            text = stripped.replace('"""', "").replace("'''", "").strip()
            if text:
                out.append(unit * depth + "# " + text)
            if quote == 1:
                in_doc = not in_doc
            continue
        swapped = stripped.translate(str.maketrans({"'": '"', '"': "'"}))
        out.append(unit * depth + swapped)
    return "\n".join(out)


def body_of(code: str) -> str:
    rows = code.replace("\r\n", "\n").split("\n")
    first = next((i for i, r in enumerate(rows) if r.lstrip().startswith("def ")), -1)
    return "\n".join(rows[first + 1:])


def as_comment(text: str, lang: str, rng: random.Random) -> str:
    prose = [row.strip() for row in text.strip().split("\n") if row.strip()]
    marker = COMMENT.get(lang, "# ")
    if marker == "// " and rng.random() < 0.5:
        return "/*\n" + "\n".join(" * " + row for row in prose) + "\n */"
    return "\n".join(marker + row for row in prose)


def make_styles(data: Data) -> dict[str, Callable[[random.Random], tuple[str, str, str, str] | None]]:
    """style -> draw(rng) -> (text, kind, benchmark, item id), or None when the drawn item is trivial."""

    def python_solution(rng: random.Random) -> tuple[str, str, str] | None:
        if rng.random() < 0.4:
            item = rng.choice(data.items["humaneval"])
            code, body, bench = item["prompt"] + item["canonical_solution"], item["canonical_solution"], "humaneval"
        else:
            item = rng.choice(data.items["mbpp"])
            code, bench = item["code"].replace("\r\n", "\n"), "mbpp"
            body = body_of(code)
        return None if lines(body) < TRIVIAL_BODY_LINES else (code, bench, item["id"])

    def module_verbatim(rng: random.Random) -> tuple[str, str, str, str] | None:
        drawn = python_solution(rng)
        if drawn is None:
            return None
        code, bench, ident = drawn
        return insert(rng.choice(data.python)["content"], code, rng, True), "code", bench, ident

    def reindented(rng: random.Random) -> tuple[str, str, str, str] | None:
        drawn = python_solution(rng)
        if drawn is None:
            return None
        code, bench, ident = drawn
        return insert(rng.choice(data.python)["content"], reindent(code, rng), rng, True), "code", bench, ident

    def solution_body(rng: random.Random) -> tuple[str, str, str, str] | None:
        if rng.random() < 0.5:
            item = rng.choice(data.items["humaneval"])
            body, bench = item["canonical_solution"], "humaneval"
        else:
            item = rng.choice(data.items["mbpp"])
            body, bench = body_of(item["code"]), "mbpp"
        if lines(body) < TRIVIAL_BODY_LINES:
            return None
        block = "def helper_function(values, *args):\n" + body
        return insert(rng.choice(data.python)["content"], block, rng, True), "code", bench, item["id"]

    def task_as_comment(rng: random.Random) -> tuple[str, str, str, str] | None:
        from lemur_corpus.filters.decontam.benchmarks import docstring_description

        host = rng.choice(data.commented)
        if rng.random() < 0.5:
            item = rng.choice(data.items["mbpp"])
            task, bench = item["text"], "mbpp"
        else:
            item = rng.choice(data.items["humaneval"])
            task, bench = docstring_description(item["prompt"]), "humaneval"
        if words(task) < TRIVIAL_WORDS:
            return None
        return insert(host["content"], as_comment(task, host["lang"], rng), rng, True), "code", bench, item["id"]

    def question_only(rng: random.Random) -> tuple[str, str, str, str] | None:
        if rng.random() < 0.5:
            item = rng.choice(data.items["gsm8k"])
            question, bench = item["question"], "gsm8k"
        else:
            item = rng.choice(data.items["mmlu"])
            question, bench = item["question"], "mmlu"
            if words(question) < TRIVIAL_WORDS:
                return None
        post = rng.choice(["Can anyone help me with this one?\n\n{q}\n\nThanks in advance!", "Question: {q}", "{q}"])
        return insert(rng.choice(data.english)["text"], post.format(q=question), rng, False), "text", bench, item["id"]

    def answer_rewritten(rng: random.Random) -> tuple[str, str, str, str]:
        item = rng.choice(data.items["gsm8k"])
        answer = re.sub(r"<<[^<>]*>>", "", item["answer"])
        answer = re.sub(r"\n?#### *(.+)$", r"\nThe answer is \1.", answer)
        return insert(rng.choice(data.english)["text"], "Solution:\n" + answer, rng, False), "text", "gsm8k", item["id"]

    def mc_reformatted(rng: random.Random) -> tuple[str, str, str, str]:
        item = rng.choice(data.items["mmlu"])
        labels = rng.choice([["(a)", "(b)", "(c)", "(d)"], ["A)", "B)", "C)", "D)"], ["1.", "2.", "3.", "4."],
                             ["-", "-", "-", "-"], ["A:", "B:", "C:", "D:"]])
        choices = [f"{label} {item[f'choice{i}']}" for i, label in enumerate(labels)]
        right = item["answer"]
        answer = rng.choice(["", f"\nAnswer: {item[f'choice{right}']}", f"\nCorrect answer: {labels[right]}"])
        block = f"Q{rng.randint(1, 40)}. {item['question']}\n" + "\n".join(choices) + answer
        return insert(rng.choice(data.english)["text"], block, rng, False), "text", "mmlu", item["id"]

    def other_language_prompt(rng: random.Random) -> tuple[str, str, str, str]:
        item = rng.choice(data.items["multipl-e"])
        lang = MULTIPL_E_LANGUAGE.get(item["language"])
        hosts = [r for r in data.code if r["lang"] == lang] or data.code
        block = item["prompt"] + "    // TODO\n" + (item["stop_tokens"][0].strip() if item.get("stop_tokens") else "")
        return insert(rng.choice(hosts)["content"], block, rng, True), "code", "multipl-e", item["id"]

    def spider_query(rng: random.Random) -> tuple[str, str, str, str] | None:
        item = rng.choice(data.items["spider"])
        if words(item["question"] + " " + item["query"]) < TRIVIAL_SQL_WORDS:
            return None
        host = rng.choice(data.commented)
        marker = COMMENT.get(host["lang"], "# ")
        block = f"{marker}{item['question']}\nquery = \"{item['query']}\""
        return insert(host["content"], block, rng, True), "code", "spider", item["id"]

    def bbh_input(rng: random.Random) -> tuple[str, str, str, str] | None:
        item = rng.choice(data.items["bbh"])
        if item["task"] in BBH_SYMBOLIC:
            return None
        block = f"{item['input']}\nA: {item['target']}"
        return insert(rng.choice(data.english)["text"], block, rng, False), "text", "bbh", item["id"]

    return {"module_verbatim": module_verbatim, "reindented": reindented, "solution_body": solution_body,
            "task_as_comment": task_as_comment, "question_only": question_only, "answer_rewritten": answer_rewritten,
            "mc_reformatted": mc_reformatted, "other_language_prompt": other_language_prompt,
            "spider_query": spider_query, "bbh_input": bbh_input}


BENCHMARK_TALK = [
    "HumanEval is a set of 164 hand-written Python programming problems released by OpenAI in 2021; each has a "
    "function signature, a docstring and unit tests, and models are scored by pass@k.",
    "MBPP (Mostly Basic Python Problems) collects about a thousand crowd-sourced entry-level tasks, each with a "
    "short description, a reference solution and three assert statements.",
    "GSM8K contains 8.5 thousand grade school math word problems that take two to eight steps to solve; the test "
    "split has 1,319 of them and answers end with the final number.",
    "MMLU measures knowledge across 57 subjects, from abstract algebra to world religions, with four-option "
    "multiple-choice questions; the test set holds 14,042 questions.",
    "BIG-Bench Hard is a suite of 23 challenging tasks where earlier models fell short of the average human rater, "
    "and chain-of-thought prompting helps most.",
    "Spider is a cross-domain text-to-SQL benchmark over 200 databases; we report execution accuracy on its "
    "development set because the test set is hidden.",
    "MultiPL-E translates HumanEval and MBPP into eighteen programming languages so that code models can be "
    "compared beyond Python.",
    "Our model reaches 62 percent on HumanEval and 71 percent on GSM8K with eight-shot chain of thought, while "
    "MMLU stays close to the base model.",
]
NAMES = ["Maria", "Tom", "Aisha", "Kenji", "Lena", "Carlos", "Priya", "Jonas", "Fatima", "Ivan", "Grace", "Omar"]
THINGS = [("apples", "basket"), ("pencils", "box"), ("stickers", "sheet"), ("cookies", "tray"), ("marbles", "bag"),
          ("books", "shelf"), ("eggs", "carton"), ("cards", "deck")]


def near_misses(data: Data, rng: random.Random, count: int) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"same_name_other_body": [], "about_benchmarks": [], "word_problems": []}
    for _ in range(count):
        item = rng.choice(data.items["humaneval"])
        signature = next((row for row in item["prompt"].split("\n") if row.startswith("def ")), "def f(x):")
        body = rng.choice([
            '    """Placeholder kept for API compatibility."""\n    raise NotImplementedError\n',
            '    """Thin wrapper used by the CLI."""\n    result = helper(*locals().values())\n    log.debug("done")\n'
            '    return result\n',
            '    # delegate to the compiled implementation\n    return _impl.call(locals())\n'])
        host = rng.choice(data.python)["content"]
        out["same_name_other_body"].append(insert(host, signature + "\n" + body, rng, True))
        talk = " ".join(rng.sample(BENCHMARK_TALK, 3))
        out["about_benchmarks"].append(insert(rng.choice(data.english)["text"], talk, rng, False))
        name, (thing, box) = rng.choice(NAMES), rng.choice(THINGS)
        boxes, per, gone = rng.randint(2, 9), rng.randint(6, 24), rng.randint(1, 20)
        problem = (f"{name} buys {boxes} {box}s of {thing} with {per} {thing} in each {box}. {name} gives {gone} "
                   f"{thing} to a friend. How many {thing} does {name} have left?\n{name} has {boxes} * {per} = "
                   f"{boxes * per} {thing}. After giving {gone} away, {boxes * per} - {gone} = {boxes * per - gone}. "
                   f"The answer is {boxes * per - gone}.")
        out["word_problems"].append(insert(rng.choice(data.english)["text"], problem, rng, False))
    return out


BASELINE_FIELDS = {"humaneval": ("prompt", "canonical_solution"), "mbpp": ("text", "code"),
                   "gsm8k": ("question", "answer"), "mmlu": ("question",), "bbh": ("input",),
                   "spider": ("question", "query"), "multipl-e": ("prompt",)}


def exact_substring(record: dict[str, Any], text: str) -> bool:
    """The baseline: a field of the item (at least 20 characters) appears verbatim in the document."""
    fields = [str(record.get(f) or "").strip() for f in BASELINE_FIELDS[record["benchmark"]]]
    return any(len(f) >= 20 and f in text for f in fields)


def judge(decontam: DecontamFilter, text: str, kind: str) -> str:
    verdict = decontam(Document(id="q", source="bench", kind=kind, text=normalize_text(text)))  # type: ignore[arg-type]
    return "" if verdict.keep else verdict.reason.removeprefix("decontam.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--per-style", type=int, default=150)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--index", default="builtin")
    parser.add_argument("--ngram", type=int, default=None)
    parser.add_argument("--min-containment", type=float, default=None)
    parser.add_argument("--show-misses", type=int, default=0, metavar="N",
                        help="print the item ids of up to N missed or misnamed plants per style")
    args = parser.parse_args()
    from pathlib import Path

    data = Data(Path(args.data))
    overrides = {k: v for k, v in (("ngram", args.ngram), ("min_containment", args.min_containment)) if v is not None}
    decontam = DecontamFilter(DecontamConfig(index=args.index, **overrides))
    decontam.setup()
    rng = random.Random(args.seed)
    started = time.perf_counter()
    rows = []
    total = dropped_all = named_all = baseline_all = 0
    records = {r["id"]: r for items in data.items.values() for r in items}
    for style, draw in make_styles(data).items():
        planted: list[tuple[str, str, str, str]] = []
        skipped = 0
        while len(planted) < args.per_style:
            one = draw(rng)
            if one is None:
                skipped += 1
                continue
            planted.append(one)
        dropped = named = caught = 0
        misses = []
        for text, kind, bench, ident in planted:
            found = judge(decontam, text, kind)
            dropped += bool(found)
            named += found == bench
            caught += exact_substring(records[ident], text)
            if found != bench:
                misses.append(f"{ident} -> {found or 'kept'}")
        if args.show_misses and misses:
            print(f"{style}: " + "; ".join(misses[: args.show_misses]))
        rows.append((style, len(planted), dropped, named, caught, skipped))
        total += len(planted)
        dropped_all += dropped
        named_all += named
        baseline_all += caught
    seconds = time.perf_counter() - started
    clean = {"hosts_code": [r["content"] for r in data.code], "hosts_web": [r["text"] for r in data.web]}
    clean.update(near_misses(data, random.Random(args.seed + 1), args.per_style))
    clean_rows = []
    for group, texts in clean.items():
        kind = "code" if group in ("hosts_code", "same_name_other_body") else "text"
        drops = [judge(decontam, t, kind) for t in texts]
        clean_rows.append((group, len(texts), sum(bool(d) for d in drops), sorted({d for d in drops if d})))
    print(f"decontamination quality: index {args.index}, {args.per_style} planted documents per style, "
          f"seed {args.seed}")
    print(f"{'style':<24}{'planted':>9}{'dropped':>9}{'recall':>9}{'right benchmark':>17}{'baseline recall':>17}"
          f"{'trivial left out':>18}")
    for style, n, d, r, b, skipped in rows:
        print(f"{style:<24}{n:>9}{d:>9}{d / n:>9.1%}{r / n:>17.1%}{b / n:>17.1%}{skipped:>18}")
    print(f"{'all styles':<24}{total:>9}{dropped_all:>9}{dropped_all / total:>9.1%}{named_all / total:>17.1%}"
          f"{baseline_all / total:>17.1%}")
    print("baseline: exact substring match of a field of the planted item (bigcode's decontamination), same documents")
    print(f"\n{'clean group':<24}{'documents':>10}{'dropped':>9}{'false drops':>13}  benchmarks named")
    clean_total = clean_dropped = 0
    for group, n, d, names in clean_rows:
        clean_total += n
        clean_dropped += d
        print(f"{group:<24}{n:>10}{d:>9}{d / n:>13.2%}  {', '.join(names) or '-'}")
    print(f"{'all clean':<24}{clean_total:>10}{clean_dropped:>9}{clean_dropped / clean_total:>13.2%}")
    worst = min(d / n for _, n, d, *_ in rows)
    print(f"\ntargets: overall {dropped_all / total:.1%} (>= 95%), worst style {worst:.1%} (>= 85%), right benchmark "
          f"{named_all / max(dropped_all, 1):.1%} of drops (>= 95%), clean dropped {clean_dropped / clean_total:.2%} "
          f"(<= 0.5%)   [{seconds:.0f} s for the planted sets]")


if __name__ == "__main__":
    main()
