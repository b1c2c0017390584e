"""Mixture variants: named alternatives to the mixture, planned from the same pools in the same pass
(docs/design.md, Variants).

A variant is either `code_text_ratio: R` (the code weights and the text weights scaled so that code is R
parts to text's 1, keeping the proportions inside each kind) or a full `sources:` weight table; either
may set its own `total_tokens` and `max_epochs` (the cap of sources that set none). Everything else
(sources' kinds and caps, the empty-source policy, the seed) is the main mixture's.

Nested samples. Every plan (the main mixture's and each variant's) takes a source's documents
`full_copies` times, and once more for a subset chosen by the same seeded hash u(doc): the histogram
bins below the plan's boundary bin whole, and a choice inside its boundary window. `nested_choices`
makes those choices one chain per number of full copies, in order of the tokens they need: the main
mixture's choice is exactly `mixture.boundary_choice` (so adding variants changes no byte of the main
mixture), a larger plan keeps every document the next smaller one took and fills up greedily in u
order, a smaller one chooses only among the documents the next larger one took. So for every source,
a larger rate writes every document at least as often as a smaller one: comparisons between variants
differ only by the ratio, not by which documents were drawn.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import Field, field_validator, model_validator

from lemur_corpus.configbase import NAME_PATTERN, StrictModel
from lemur_corpus.mixture import (
    MixtureConfig,
    MixturePlan,
    PoolStats,
    SourcePlan,
    boundary_choice,
    copies_of,
    histogram_bin,
)

VARIANTS_DIR = "variants"
"""Variant folders are `OUT/variants/<name>/`."""
SHARED_DIR = ".shared"
"""`OUT/variants/.shared/shards/`: token bytes of documents the main mixture does not write but a variant
does, written once (a name no variant can take: variant names start with a letter or digit)."""
MAIN = ""
"""The main mixture's key among the plans of one build."""


class VariantSource(StrictModel):
    weight: float = Field(ge=0)
    """Percent of the variant's tokens."""
    max_epochs: float | None = Field(default=None, gt=0)
    """This source's cap in the variant (default: the main mixture's cap of the source)."""


class VariantConfig(StrictModel):
    name: str
    code_text_ratio: float | None = None
    """Code tokens per text token (10 for Lemur's 10:1): the main weights rescaled per kind."""
    sources: dict[str, VariantSource | float] | None = None
    """A full weight table, source -> percent (or {weight, max_epochs}); sources left out get 0."""
    total_tokens: int | None = None
    """The variant's N. Default: the main mixture's total_tokens (none: the largest its caps allow)."""
    max_epochs: float | None = None
    """The cap of sources without their own (default: mixture.default_max_epochs)."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.match(NAME_PATTERN, value):
            raise ValueError(f"variant name {value!r} must be lowercase letters, digits, '_' or '-'")
        return value

    @model_validator(mode="after")
    def _shape(self) -> VariantConfig:
        where = f"variant {self.name!r}"
        if (self.code_text_ratio is None) == (self.sources is None):
            raise ValueError(f"{where}: give exactly one of code_text_ratio or sources")
        if self.code_text_ratio is not None and not (math.isfinite(self.code_text_ratio)
                                                     and self.code_text_ratio > 0):
            raise ValueError(f"{where}: code_text_ratio must be a number > 0, got {self.code_text_ratio!r}")
        if self.total_tokens is not None and self.total_tokens <= 0:
            raise ValueError(f"{where}: total_tokens must be > 0, got {self.total_tokens}")
        if self.max_epochs is not None and not self.max_epochs > 0:
            raise ValueError(f"{where}: max_epochs must be > 0, got {self.max_epochs}")
        return self

    def spec(self) -> dict[str, Any]:
        """What the variant asks for, as the manifests record it."""
        return self.model_dump(mode="json", exclude_none=True)


def variant_mixture(main: MixtureConfig, variant: VariantConfig) -> MixtureConfig:
    """The variant's own mixture config; a `ValueError` naming the variant when it cannot be one."""
    where = f"variant {variant.name!r}"
    sources = {name: src.model_copy() for name, src in main.sources.items()}
    if variant.code_text_ratio is not None:
        code = sum(s.weight for s in sources.values() if s.kind == "code")
        text = sum(s.weight for s in sources.values() if s.kind == "text")
        if not code or not text:
            missing = "code" if not code else "text"
            raise ValueError(f"{where}: code_text_ratio needs code and text sources with weight, and the mixture "
                             f"has no {missing} weight")
        ratio = variant.code_text_ratio
        code_share, text_share = 100.0 * ratio / (ratio + 1), 100.0 / (ratio + 1)
        for src in sources.values():
            src.weight = src.weight * (code_share / code if src.kind == "code" else text_share / text)
    else:
        table = variant.sources or {}
        unknown = sorted(set(table) - set(sources))
        if unknown:
            raise ValueError(f"{where}: unknown source(s) {', '.join(unknown)} (the mixture's sources: "
                             f"{', '.join(sorted(sources))})")
        for name, src in sources.items():
            given = table.get(name, 0.0)
            entry = given if isinstance(given, VariantSource) else VariantSource(weight=float(given))
            src.weight = entry.weight
            if entry.max_epochs is not None:
                src.max_epochs = entry.max_epochs
        total = sum(s.weight for s in sources.values())
        if not math.isfinite(total) or abs(total - 100.0) > main.weight_sum_tolerance:
            raise ValueError(f"{where}: weights add up to {total:.4g}%, not 100% (tolerance "
                             f"{main.weight_sum_tolerance:g} points)")
    data = main.model_dump()
    data["sources"] = {name: src.model_dump() for name, src in sources.items()}
    if variant.total_tokens is not None:
        data["total_tokens"] = variant.total_tokens
    if variant.max_epochs is not None:
        data["default_max_epochs"] = variant.max_epochs
    try:
        return MixtureConfig.model_validate(data)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise ValueError(f"{where}: {exc}") from None


def check_variants(main: MixtureConfig, variants: list[VariantConfig]) -> list[MixtureConfig]:
    """Every variant's mixture, in order; a `ValueError` naming the first variant that cannot be one."""
    names = [v.name for v in variants]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"variant names must be unique; repeated: {', '.join(repeated)}")
    if variants and not main.enabled:
        raise ValueError(f"variant {variants[0].name!r}: variants need mixing (mixture.enabled: true)")
    return [variant_mixture(main, v) for v in variants]


# ---------------------------------------------------------------------------------------------
# Nested samples


def in_window(plan: SourcePlan, b: int) -> bool:
    return plan.extra_tokens > 0 and plan.boundary_bin >= 0 and plan.boundary_bin <= b <= plan.boundary_end_bin


def in_any_window(plans: Iterable[SourcePlan], u: float) -> bool:
    b = histogram_bin(u)
    return any(in_window(p, b) for p in plans)


def nested_choices(members: Iterable[tuple[float, str, int]], plans: Mapping[str, SourcePlan],
                   anchor: str = MAIN) -> dict[str, frozenset[str]]:
    """For one source: plan key -> the ids each plan takes once more inside its boundary window.

    `members` are (u, id, tokens) of every document in any plan's window. Plans with the same full
    copies form a chain ordered by the tokens they need (E_s); the anchor's choice is
    `boundary_choice` over its own window, larger plans keep what the next smaller one took and fill
    up, smaller plans choose among what the next larger one took (see the module docstring).
    """
    ordered = sorted(members)
    bins = [histogram_bin(u) for u, _, _ in ordered]
    out: dict[str, frozenset[str]] = {}
    groups: dict[int, list[str]] = {}
    for key, plan in plans.items():
        if plan.extra_tokens > 0 and plan.boundary_bin >= 0:
            groups.setdefault(plan.full_copies, []).append(key)
        else:
            out[key] = frozenset()
    for keys in groups.values():
        keys.sort(key=lambda k: (plans[k].extra_tokens, k != anchor, k))
        start = keys.index(anchor) if anchor in keys else 0

        def window(key: str) -> list[tuple[float, str, int]]:
            return [m for m, b in zip(ordered, bins, strict=True) if in_window(plans[key], b)]

        first = keys[start]
        out[first] = boundary_choice(window(first), plans[first].boundary_tokens)
        for i in range(start + 1, len(keys)):  # upward: keep the smaller plan's choice, fill up
            key, smaller = keys[i], out[keys[i - 1]]
            own = window(key)
            forced = [m for m in own if m[1] in smaller]
            need = plans[key].boundary_tokens - sum(t for _, _, t in forced)
            rest = [m for m in own if m[1] not in smaller]
            out[key] = frozenset(m[1] for m in forced) | (boundary_choice(rest, need) if need > 0 else frozenset())
        for i in range(start - 1, -1, -1):  # downward: choose among what the larger plan took
            key, larger = keys[i], plans[keys[i + 1]]
            taken = out[keys[i + 1]]
            allowed = [m for m, b in zip(ordered, bins, strict=True)
                       if in_window(plans[key], b) and (b < larger.boundary_bin or m[1] in taken)]
            out[key] = boundary_choice(allowed, plans[key].boundary_tokens)
    return out


def mix_variants_in_memory(main: MixtureConfig, variants: Mapping[str, MixtureConfig], seed: int,
                           docs: Iterable[tuple[str, str, int]]) -> dict[str, tuple[MixturePlan, dict[str, int]]]:
    """`mixture.mix_in_memory` for the main mixture (key `MAIN`) and every variant at once: plan key ->
    (plan, copies per document id). For tests and tools; the pipeline never gathers documents like this."""
    docs = list(docs)
    stats = PoolStats.of(seed, docs)
    points = stats.points
    plans = {MAIN: stats.plan(main, seed)}
    for name, mixture in variants.items():
        plans[name] = stats.plan(mixture, seed)
    members: dict[str, list[tuple[float, str, int]]] = {}
    for source, doc_id, tokens in docs:
        if in_any_window([p.sources[source] for p in plans.values()], points[doc_id]):
            members.setdefault(source, []).append((points[doc_id], doc_id, tokens))
    cuts = {s: nested_choices(m, {k: p.sources[s] for k, p in plans.items()}) for s, m in members.items()}
    return {key: (plan, {doc_id: copies_of(plan.sources[source], points[doc_id], doc_id,
                                           cuts.get(source, {}).get(key))
                         for source, doc_id, _ in docs})
            for key, plan in plans.items()}
