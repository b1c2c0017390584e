"""The audit's pure parts, without a build: length histograms, copy checks, targets, chunked shard
scans, schema-version migrations."""

from __future__ import annotations

import numpy as np
import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from lemur_corpus import audit
from lemur_corpus.audit import (
    LengthHistogram,
    ManifestVersionError,
    SourceCopies,
    copy_problems,
    migrate,
    scan_bin,
    target_weights,
    within_target,
)
from lemur_corpus.manifest import SCHEMA_VERSION


@given(st.lists(st.integers(min_value=1, max_value=2_000_000), min_size=1, max_size=400))
@settings(max_examples=60, deadline=None)
def test_length_histogram_quantiles_are_within_one_bin(lengths: list[int]) -> None:
    hist = LengthHistogram()
    hist.add(np.array(lengths[: len(lengths) // 2]))
    hist.add(np.array(lengths[len(lengths) // 2:]))
    assert hist.documents == len(lengths) and hist.tokens == sum(lengths)
    assert (hist.shortest, hist.longest) == (min(lengths), max(lengths))
    step = 2 ** (1 / audit.LENGTH_BINS_PER_OCTAVE)
    for q in (0.5, 0.9):
        exact = float(np.quantile(np.array(lengths), q, method="inverted_cdf"))
        assert exact / step <= hist.quantile(q) <= exact * step


def _copies(ids: list[str], copy: list[int], tokens: list[int]) -> SourceCopies:
    hashed = [xxhash.xxh64_intdigest(i.encode()) for i in ids]
    return SourceCopies([np.array(hashed, dtype=np.uint64)], [np.zeros(len(ids), dtype=np.uint64)],
                        [np.array(copy, dtype=np.int64)], [np.array(tokens, dtype=np.int64)])


def test_copy_problems_accepts_full_copies_plus_one_extra() -> None:
    plan = {"full_copies": 2, "extra_tokens": 5}
    placed = _copies(["a", "a", "b", "b", "b"], [0, 1, 0, 2, 1], [3, 3, 4, 4, 4])
    problems, unique, first = copy_problems("python", plan, placed, enabled=True)
    assert problems == [] and unique == 2 and first == 7


def test_copy_problems_names_duplicated_and_unplanned_copies() -> None:
    plan = {"full_copies": 1, "extra_tokens": 0}
    duplicated = _copies(["a", "a"], [0, 0], [3, 3])
    problems, _, _ = copy_problems("python", plan, duplicated, enabled=True)
    assert any("copy numbering" in p for p in problems)
    assert any("written 2 time(s)" in p and "allows 1" in p for p in problems)
    missing_first = _copies(["a"], [1], [3])
    assert any("copy numbering" in p for p in copy_problems("sql", plan, missing_first, enabled=True)[0])


def test_within_target_allows_one_document_of_granularity() -> None:
    assert within_target(1_050, 0.10, 10_000, 0.001, 60)      # 50 tokens off, documents of 60
    assert not within_target(1_050, 0.10, 10_000, 0.001, 40)  # 50 off, beyond 10 tokens and one doc
    assert within_target(1_050, 0.10, 10_000, 0.005, 0)       # 0.5 points allowed


def test_target_weights_redistribute_empty_sources_within_their_kind() -> None:
    config = {"mixture": {"enabled": True, "min_pool_tokens": 10, "on_empty_source": "redistribute", "sources": {
        "python": {"kind": "code", "weight": 60}, "sql": {"kind": "code", "weight": 30},
        "web": {"kind": "text", "weight": 10}}}}
    configured, effective, problems = target_weights(config, {"python": 100, "sql": 5, "web": 50})
    assert problems == []
    assert configured == pytest.approx({"python": 0.6, "sql": 0.3, "web": 0.1})
    assert effective == pytest.approx({"python": 0.9, "sql": 0.0, "web": 0.1})
    config["mixture"]["on_empty_source"] = "error"
    assert "sql" in target_weights(config, {"python": 100, "sql": 5, "web": 50})[2][0]


def test_scan_bin_streams_across_chunk_boundaries(tmp_path, monkeypatch) -> None:
    rng = np.random.default_rng(7)
    lengths = rng.integers(1, 9, size=50)
    tokens = rng.integers(5, 1000, size=int(lengths.sum())).astype(np.int32)
    ends = np.cumsum(lengths) - 1
    tokens[ends] = 1
    tokens[ends[[3, 17]]] = 2  # two documents without EOS
    path = tmp_path / "x.bin"
    path.write_bytes(tokens.tobytes())
    monkeypatch.setattr("lemur_corpus.audit.scan.READ_CHUNK", 10)  # not a multiple of 4: tokens straddle chunks
    scan = scan_bin(str(path), np.dtype(np.int32), ends, eos_id=1)
    assert scan.size == tokens.nbytes and scan.eos_misses == 2
    assert (scan.min_id, scan.max_id) == (int(tokens.min()), int(tokens.max()))
    import hashlib

    assert scan.sha256 == hashlib.sha256(tokens.tobytes()).hexdigest()


def test_migrate_explains_versions_it_cannot_read(monkeypatch) -> None:
    with pytest.raises(ManifestVersionError, match="no schema_version"):
        migrate({"build": {}})
    with pytest.raises(ManifestVersionError, match="newer than this lemur-corpus"):
        migrate({"schema_version": "99.0"})
    with pytest.raises(ManifestVersionError, match="knows no migration from 0.9.*version that wrote it"):
        migrate({"schema_version": "0.9", "code": {"version": "0.0.9", "git_commit": "abc"}})


def test_migrate_chains_registered_steps(monkeypatch) -> None:
    def rename(m):  # an older layout called the realized share `share`
        m["mixture"]["realized"] = m["mixture"].pop("share")
        return m

    def add_totals(m):
        m.setdefault("totals", {"tokens": 0})
        return m

    monkeypatch.setattr("lemur_corpus.audit.migration.MIGRATIONS",
                        {"0.8": ("0.9", rename, "share renamed realized"),
                         "0.9": (SCHEMA_VERSION, add_totals, "totals added")})
    original = {"schema_version": "0.8", "mixture": {"share": 0.5}}
    migrated, notes = migrate(original)
    assert migrated["schema_version"] == SCHEMA_VERSION
    assert migrated["mixture"] == {"realized": 0.5} and migrated["totals"] == {"tokens": 0}
    assert original == {"schema_version": "0.8", "mixture": {"share": 0.5}}  # the input is untouched
    assert [n.split(":")[0] for n in notes] == ["manifest migrated from schema 0.8 to 0.9",
                                                f"manifest migrated from schema 0.9 to {SCHEMA_VERSION}"]


def test_the_help_states_the_real_default_tolerance() -> None:
    from lemur_corpus.commands.audit import TOLERANCE_HELP

    assert TOLERANCE_HELP.startswith(f"{audit.DEFAULT_TOLERANCE:g} ")
