"""The embedded default build (DESIGN §5): the local Python installation as a small, real corpus.

The mixture keeps Lemur's Table 8 weights exactly. Sources this environment has no files for (books,
arXiv, PHP...) hand their weight to the other sources of their kind (recorded in the manifest), so
code:text stays 10:1. `configs/default.yaml` is this config written out; a test keeps them equal.
"""

from __future__ import annotations

from corpus.config import BuildConfig, InputConfig, LocalEnvConfig, MixtureConfig, ShardConfig, lemur_mixture_sources


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
        mixture=MixtureConfig(
            sources=lemur_mixture_sources(),
            on_empty_source="redistribute",
            min_pool_tokens=50_000,
        ),
        shards=ShardConfig(target_tokens=4_000_000),
    )
