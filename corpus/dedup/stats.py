"""Dedup statistics: ((section, group, metric), value) records that the manifest's `dedup` section
is built from (`corpus/manifest.py: dedup_section`).

Sections: `exact` and `near` per kind, `exact_by_source` and `near_by_source` per mixture source.
Metrics named `max_*` combine by maximum, all others by sum; `duplicate_rate` is derived once the
sums are known (removed / documents), because a rate cannot be summed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

Stat = tuple[tuple[str, str, str], float]

NEAR_METRICS = (
    "documents", "empty_documents", "short_documents", "capped_documents",
    "buckets_linked", "max_bucket_size", "candidate_pairs", "max_root_candidates",
    "verified_edges", "rejected_pairs", "union_find_nodes", "union_find_edges", "union_find_bytes",
    "clusters", "max_cluster_size", "removed", "removed_bytes",
)
"""Every near-dedup metric of a kind, reported (as 0 when nothing happened) whenever it is enabled."""


def stat(section: str, group: str, metric: str, value: float = 1) -> Stat:
    return ((section, group, metric), value)


def is_max_metric(key: tuple[str, str, str]) -> bool:
    return key[2].startswith("max_")


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
