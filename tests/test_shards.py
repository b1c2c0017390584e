"""Megatron shards: what we write is what megatron-core's IndexedDataset reads, token for token."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lemur_corpus.config import TokenizerConfig
from lemur_corpus.shards import (
    ShardDoc,
    ShardFormatError,
    parse_index,
    read_docs_index,
    read_shard_documents,
    write_shard,
)
from lemur_corpus.tokenizer import encode_batch, load_tokenizer, tokenizer_identity
from tests.conftest import read_jsonl, shared_path


def _real_token_docs(n: int = 40) -> list[ShardDoc]:
    records = read_jsonl(shared_path("code", "code_sample.jsonl.zst"))[:n]
    identity = tokenizer_identity(TokenizerConfig())
    tokens = encode_batch(load_tokenizer(TokenizerConfig()), [r["content"] for r in records], identity.eos_id,
                          np.dtype(identity.dtype))
    return [ShardDoc(r["hexsha"], "python", 0, t) for r, t in zip(records, tokens, strict=True)]


def test_index_layout_and_round_trip(tmp_path: Path) -> None:
    docs = _real_token_docs()
    record = write_shard(str(tmp_path / "s"), "s", docs, np.dtype(np.int32))
    assert record["documents"] == len(docs) and record["tokens"] == sum(len(d.tokens) for d in docs)
    index = parse_index((tmp_path / "s.idx").read_bytes())
    assert index.dtype == np.int32
    assert list(index.lengths) == [len(d.tokens) for d in docs]
    assert index.pointers[0] == 0 and index.pointers[1] == 4 * len(docs[0].tokens)
    assert list(index.document_indices) == list(range(len(docs) + 1))
    for got, want in zip(read_shard_documents(str(tmp_path / "s")), docs, strict=True):
        assert np.array_equal(got, want.tokens)
    assert [row["id"] for row in read_docs_index(str(tmp_path / "s"))] == [d.id for d in docs]
    assert not list(tmp_path.glob("*.tmp-*"))  # atomic: no temporary files left


def test_megatron_core_reads_our_shards(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    indexed = pytest.importorskip("megatron.core.datasets.indexed_dataset")
    docs = _real_token_docs()
    for dtype in (np.int32, np.uint16):
        prefix = tmp_path / f"shard-{np.dtype(dtype).name}"
        cast = [ShardDoc(d.id, d.source, 0, (d.tokens % 60000).astype(dtype)) for d in docs]
        write_shard(str(prefix), prefix.name, cast, np.dtype(dtype))
        dataset = indexed.IndexedDataset(str(prefix), mmap=True)
        assert len(dataset) == len(docs)
        assert list(dataset.document_indices) == list(range(len(docs) + 1))
        for i, doc in enumerate(cast):
            got = dataset[i]
            assert got.dtype == np.dtype(dtype)
            assert np.array_equal(got, doc.tokens)
        # Partial reads, as GPTDataset does them.
        assert np.array_equal(dataset.get(3, offset=2, length=5), cast[3].tokens[2:7])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b[:-3], "index is"),
        (lambda b: b"XXXXXXX" + b[7:], "bad magic"),
        (lambda b: b[:9] + (2).to_bytes(8, "little") + b[17:], "version 2"),
        (lambda b: b[:10], "truncated index"),
    ],
)
def test_broken_index_is_named(tmp_path: Path, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    write_shard(str(tmp_path / "s"), "s", _real_token_docs(5), np.dtype(np.int32))
    with pytest.raises(ShardFormatError, match=message):
        parse_index(mutate((tmp_path / "s.idx").read_bytes()), "s.idx")


def test_bin_size_must_match_index(tmp_path: Path) -> None:
    write_shard(str(tmp_path / "s"), "s", _real_token_docs(5), np.dtype(np.int32))
    data = (tmp_path / "s.bin").read_bytes()
    (tmp_path / "s.bin").write_bytes(data[:-4])
    with pytest.raises(ShardFormatError, match="the index describes"):
        list(read_shard_documents(str(tmp_path / "s")))


def test_a_shard_written_in_many_parts_has_the_bytes_of_one_sort(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A shard's members are sorted and written in parts (ranges of their position), then streamed
    into the shard: the same shards, token indexes, texts and variant indexes as one part per shard,
    and no part file is left."""
    from lemur_corpus.pipelines import shard as shard_stage
    from lemur_corpus.pipelines.build import run_build
    from tests.buildutil import output_digest, slice_config

    config = slice_config(code_rows=60, web_rows=30, shards={"target_tokens": 40_000, "write_jsonl": True},
                          variants=[{"name": "r5", "code_text_ratio": 5}])
    digests = {}
    for part_tokens in (10**12, 997):
        monkeypatch.setattr(shard_stage, "PART_TOKENS", part_tokens)
        out = tmp_path / f"parts-{part_tokens}"
        manifest = run_build(config, str(out), [])
        assert manifest["accounting"]["balanced"] and len(manifest["shards"]) > 1
        assert not list(out.rglob("*.part-*")) and not list(out.rglob("*.tmp-*")) and not list(out.rglob("spill-*"))
        digests[part_tokens] = output_digest(out)
    assert shard_stage.parts_per_shard(40_000) == 41  # the second build: 41 parts a shard
    assert digests[997] == digests[10**12]
    assert any(name.endswith(".jsonl.zst") and "/shard-" in name and ".docs." not in name for name in digests[997])
