"""Settings of the `decontam` filter (one section per kind: `filters.code.decontam`, `filters.text.decontam`).

Sources cited below:
- GPT-3: Brown et al. 2020, "Language Models are Few-Shot Learners", App. C: an example is dirty
  when it shares an N-gram of words with the training data, N being the 5th-percentile length of the
  benchmark's examples in words, never below 8 (and 13 for the training-set filter of §2.2).
- PaLM: Chowdhery et al. 2022, "PaLM: Scaling Language Modeling with Pathways", §8: an example is
  contaminated when 70% of its 8-grams occur in the training data (containment, not one shared n-gram).
- StarCoder: Li et al. 2023, §3.5 (bigcode-dataset `decontamination/`): HumanEval, MBPP, GSM8K and
  DS-1000 removed from the training code by substring matching.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from lemur_corpus.configbase import StrictModel

BUILTIN = "builtin"
"""`index: builtin`: the index of Lemur's benchmarks shipped inside the package."""


class DecontamConfig(StrictModel):
    index: str | None = BUILTIN
    """A decontamination index (`corpus decontam index`; a local or Beam FileSystems path), `builtin`
    for the one shipped with the package (MMLU, BBH, GSM8K, HumanEval, MBPP, Spider, MultiPL-E; see
    `corpus decontam info`), or null to match only `benchmarks`."""
    benchmarks: list[str] = Field(default_factory=list)
    """More benchmark files (JSON Lines, or folders of them; a team's own evaluation sets), indexed
    on each worker with the settings below and added to `index`. Layouts: filters/decontam/benchmarks.py."""
    ignore_benchmarks: list[str] = Field(default_factory=list)
    """Benchmarks of the index whose matches do not count (e.g. `mmlu` for a corpus meant to teach it)."""
    ngram: int = Field(default=8, ge=4, le=32)
    """Words per n-gram. GPT-3 takes the 5th-percentile item length, never below 8; for Lemur's
    benchmarks that gives 8 (MBPP task texts, MMLU and Spider questions, HumanEval solution bodies are
    mostly 10-20 words: with 13-grams half of MBPP's texts and most Spider questions could never be
    found). PaLM matches 8-grams too. An index is built with one n and refused by another."""
    sketch: int = Field(default=24, ge=1, le=1024)
    """Sampled n-grams kept per part (bottom-k): enough to measure containment to within a few n-grams,
    small enough that the shipped index of 27,000 items stays a few MB."""
    min_ngrams: int = Field(default=3, ge=1)
    """A part needs this many informative n-grams to be indexed, and a document this many of them to
    match: a part shorter than n + 2 words (`return a + b`) never matches alone."""
    max_families: int = Field(default=4, ge=2)
    """An n-gram found in this many families of items (templates: "Which of the following", BBH task
    instructions, HumanEval's test scaffolding) is common, not evidence. Versions of one problem (a
    HumanEval task and its MultiPL-E translations) are one family."""
    min_containment: float = Field(default=0.5, gt=0, le=1)
    """A part is in a document when this share of its sampled n-grams is. PaLM's 70% was set for
    flagging benchmark items; a drop at half the part's distinctive n-grams also catches copies edited
    in places, and no real code or web page of ../shared/data comes near it (benchmarks/decontam_quality.py)."""

    @model_validator(mode="after")
    def _something_to_match(self) -> DecontamConfig:
        if self.index is None and not self.benchmarks:
            raise ValueError("decontam: no index and no benchmarks: set `index: builtin` or list benchmark files")
        return self
