"""The embedded default build: the local Python installation as a small, real corpus (docs/design.md,
The embedded default).

The mixture keeps Lemur's Table 8 weights exactly. Sources this environment has no files for (books,
arXiv, PHP...) hand their weight to the other sources of their kind (recorded in the manifest), so
code:text stays 10:1. `configs/default.yaml` is this config written out; a test keeps them equal.
"""

from __future__ import annotations

from lemur_corpus.config import (
    BuildConfig,
    FiltersConfig,
    InputConfig,
    LocalEnvConfig,
    MixtureConfig,
    ShardConfig,
    lemur_mixture_sources,
)
from lemur_corpus.filters.text.config import TextFiltersConfig

# The local text (READMEs, package descriptions, licenses) is not web prose: Gopher's quality rules
# reject READMEs for their code blocks (share of alphabetic words) and C4 removes most lines of
# hard-wrapped files, leaving too little text to sample once licenses are deduplicated. Language ID
# and Gopher's repetition rules apply to any text, so those two run here, and `pii` redacts what they
# keep (package metadata is full of author e-mail addresses); real web inputs get every text filter.
# `decontam` runs first in both chains here as everywhere (benchmark items are no more welcome in
# package documentation than in web pages).
DEFAULT_TEXT_FILTERS = ["decontam", "lid", "gopher_repetition", "pii"]


def local_text_filters() -> FiltersConfig:
    """The filters of builds over the local Python installation (this default and small test builds)."""
    return FiltersConfig(text=TextFiltersConfig(filters=DEFAULT_TEXT_FILTERS))


def embedded_default_config() -> BuildConfig:
    return BuildConfig(
        name="default",
        inputs=[
            InputConfig(
                name="local",
                format="local_env",
                text_source="refinedweb",
                local_env=LocalEnvConfig(),
            )
        ],
        filters=local_text_filters(),
        mixture=MixtureConfig(
            sources=lemur_mixture_sources(),
            on_empty_source="redistribute",
            min_pool_tokens=50_000,
        ),
        shards=ShardConfig(target_tokens=4_000_000),
    )
