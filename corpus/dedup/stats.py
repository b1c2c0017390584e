"""Dedup statistics: ((section, group, metric), value) records that the manifest's `dedup` section
is built from (`corpus/manifest.py: dedup_section`).

Sections: `exact` and `near` per kind, `exact_by_source` and `near_by_source` per mixture source.
Metrics named `max_*` (and those in `MAX_METRICS`) combine by maximum, all others by sum;
`duplicate_rate` is derived once the sums are known (removed / documents), because a rate cannot be
summed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

Stat = tuple[tuple[str, str, str], float]

NEAR_METRICS = (
    "documents", "empty_documents", "short_documents", "capped_documents",
    "buckets_linked", "max_bucket_size", "window_limited_buckets", "pairs_not_compared",
    "candidate_pairs", "verify_groups", "max_verify_group", "verified_edges", "rejected_pairs",
    "component_nodes", "components", "max_component_size", "component_rounds", "unconverged_nodes",
    "split_components", "component_parts", "edges_outside_parts",
    "clusters", "max_cluster_size", "removed", "removed_bytes",
)
"""Every near-dedup metric of a kind, reported (as 0 when nothing happened) whenever it is enabled:

- buckets: `buckets_linked` (LSH buckets of two or more documents), `max_bucket_size`,
  `window_limited_buckets` (buckets larger than 2 x bucket_window + 1, where not every pair was
  verified) and `pairs_not_compared` (the pairs those buckets left out);
- verification: `candidate_pairs` (distinct pairs proposed), `verify_groups` (documents verified
  against their earlier partners, one group each: `candidate_pairs / verify_groups` is the mean
  group), `max_verify_group` (the most documents one document was verified against on one worker),
  `verified_edges`, `rejected_pairs`;
- components: `component_nodes` (documents with an edge), `components`, `max_component_size`,
  `component_rounds` (large-star/small-star rounds the graph needed to settle, 0 when verification's
  spanning stars were settled from the start; the config's bound is
  `component_round_limit`), `unconverged_nodes` (nodes still unsettled after the last round: 0 when
  the components are exact), `split_components` and `component_parts` (components above
  `max_component_size` and the parts they were decided in), `edges_outside_parts` (edges between
  two parts, not used);
- decisions: `clusters` (kept documents that absorbed at least one duplicate), `max_cluster_size`
  (one kept document and its removed duplicates), `removed`, `removed_bytes`.
"""

MAX_METRICS = frozenset({"component_rounds"})
"""Metrics combined by maximum besides those named `max_*`."""


def stat(section: str, group: str, metric: str, value: float = 1) -> Stat:
    return ((section, group, metric), value)


def is_max_metric(key: tuple[str, str, str]) -> bool:
    return key[2].startswith("max_") or key[2] in MAX_METRICS


def combine(values: Iterable[tuple[float, float]]) -> tuple[float, float]:
    """(sum, max) of (value, value) pairs: a Beam combiner that serves both kinds of metric."""
    total, largest = 0.0, float("-inf")
    for s, m in values:
        total += s
        largest = max(largest, m)
    return total, largest


def pick(key: tuple[str, str, str], combined: tuple[float, float]) -> Stat:
    value = combined[1] if is_max_metric(key) else combined[0]
    return key, int(value) if float(value).is_integer() else value


def with_rates(stats: Iterable[Stat]) -> Iterator[Stat]:
    """The stats, plus `duplicate_rate` = removed / documents for every group that has both."""
    by_group: dict[tuple[str, str], dict[str, float]] = {}
    for key, value in stats:
        by_group.setdefault((key[0], key[1]), {})[key[2]] = value
        yield key, value
    for (section, group), metrics in sorted(by_group.items()):
        documents = metrics.get("documents", 0)
        if "removed" in metrics and documents:
            yield (section, group, "duplicate_rate"), round(metrics["removed"] / documents, 6)
