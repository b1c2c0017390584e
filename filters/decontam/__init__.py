"""Decontamination: drop documents that contain items of the benchmarks the model will be judged on.

One filter, `decontam`, first in the code and the text chains (`DecontamFilter`, reason
`decontam.<benchmark>`), over a hashed index of benchmark n-grams that ships with the package. The
parts, bottom floor up:

- `tokens`: the words both sides are reduced to, and their hashed n-grams;
- `benchmarks`: benchmark files (JSON Lines) to items and the parts that are matched separately;
- `index`: building, writing and reading the index (hashes and item ids, never benchmark text);
- `match`: a document's matches (containment of each part's sampled n-grams);
- `config`: the filter's settings, each default with its source;
- `filter`: the filter, the shipped index, the identity the manifest records;
- `report`: the contamination report (per benchmark, item and source) of a build or a `corpus filter` run.

Why first in both chains: the matcher has to look at every document anyway, so that the report
also counts contaminated documents another filter would drop (a copied MMLU page in German is still
a leak of MMLU); first, it sees the text as read rather than after C4 removed lines; and its drops
are then counted under its own reason, so the accounting says how much of each benchmark the
sources held. Its cost (benchmarks/decontam_speed.py) is a fraction of tokenizing the same text.
"""

from __future__ import annotations

from lemur_corpus.filters.decontam.config import BUILTIN, DecontamConfig
from lemur_corpus.filters.decontam.filter import (
    CONTAMINATION_META,
    NAME,
    SHIPPED_INDEX,
    DecontamFilter,
    index_identity,
    load_index,
    matcher_for,
    shipped_index_path,
)
from lemur_corpus.filters.decontam.match import Contamination, ItemMatch, Matcher

__all__ = [
    "BUILTIN",
    "CONTAMINATION_META",
    "NAME",
    "SHIPPED_INDEX",
    "Contamination",
    "DecontamConfig",
    "DecontamFilter",
    "ItemMatch",
    "Matcher",
    "index_identity",
    "load_index",
    "matcher_for",
    "shipped_index_path",
]
