"""Token ids wait on disk between tokenize and the shard writer (`corpus/token_spill.py`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lemur_corpus.document import Document
from lemur_corpus.token_spill import (
    COALESCE_BYTES,
    PARKED_DTYPE,
    SPILL_NAME,
    BundleSpill,
    SpilledTokens,
    SpillWriter,
    park_document,
    read_documents,
    read_spilled,
    remove_spills,
)

DTYPES = ("uint16", "uint32", "int32")


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.lists(st.integers(0, 4_000), max_size=12), min_size=1, max_size=4),
       dtype=st.sampled_from(DTYPES), data=st.data())
def test_any_subset_of_spilled_documents_reads_back_as_written_in_the_order_asked(
        tmp_path_factory: pytest.TempPathFactory, lengths: list[list[int]], dtype: str, data: st.DataObject) -> None:
    """Several bundles' files, documents of any length (empty ones too, long ones that cross the
    coalescing gap): any selection, in any order, repeats included, reads back exactly."""
    folder = tmp_path_factory.mktemp("spill")
    rng = np.random.default_rng(len(lengths))
    written: list[tuple[SpilledTokens, np.ndarray]] = []
    for bundle in lengths:
        writer = SpillWriter(str(folder), np.dtype(dtype))
        for length in bundle:
            ids = rng.integers(0, np.iinfo(np.dtype(dtype)).max, size=length, endpoint=True).astype(dtype)
            written.append((writer.append(ids), ids))
        writer.close()
    if not written:
        return
    chosen = data.draw(st.lists(st.integers(0, len(written) - 1), max_size=30))
    got = read_spilled([written[i][0] for i in chosen], np.dtype(dtype))
    assert len(got) == len(chosen)
    for i, ids in zip(chosen, got, strict=True):
        assert ids.dtype == np.dtype(dtype) and np.array_equal(ids, written[i][1])


def test_a_file_holds_its_bundle_back_to_back_and_far_apart_documents_are_separate_reads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file is exactly the bundle's ids in order; documents further apart than `COALESCE_BYTES`
    are two reads, not one that reads every byte between them."""
    import lemur_corpus.token_spill as spill

    writer = SpillWriter(str(tmp_path), np.dtype("uint32"))
    first = writer.append(np.arange(10, dtype=np.uint32))
    gap = writer.append(np.zeros(COALESCE_BYTES // 4 + 1, dtype=np.uint32))
    last = writer.append(np.arange(5, dtype=np.uint32))
    writer.close()
    assert Path(first.path).name == Path(last.path).name and first.path == gap.path
    raw = np.fromfile(first.path, dtype=np.uint32)
    assert len(raw) == 10 + len(np.zeros(COALESCE_BYTES // 4 + 1)) + 5 and raw[-5:].tolist() == list(range(5))
    reads: list[int] = []
    real_open = spill.open_ranged

    def counting_open(path: str):  # type: ignore[no-untyped-def]
        handle = real_open(path)
        real_read = handle.read
        handle.read = lambda n: (reads.append(n), real_read(n))[1]  # type: ignore[method-assign]
        return handle

    monkeypatch.setattr(spill, "open_ranged", counting_open)
    a, b = read_spilled([last, first], np.dtype("uint32"))
    assert a.tolist() == list(range(5)) and b.tolist() == list(range(10))
    assert sorted(reads) == [5 * 4, 10 * 4]  # two reads of their own bytes, none across the gap


def test_a_spill_file_shorter_than_its_documents_is_an_error_naming_it(tmp_path: Path) -> None:
    writer = SpillWriter(str(tmp_path), np.dtype("uint16"))
    place = writer.append(np.arange(100, dtype=np.uint16))
    writer.close()
    with open(place.path, "r+b") as handle:
        handle.truncate(50)
    with pytest.raises(OSError, match=f"{Path(place.path).name}.*25 token ids at offset 0, 100 expected"):
        read_spilled([place], np.dtype("uint16"))


def test_removing_spills_removes_the_builds_own_files_and_nothing_else(tmp_path: Path) -> None:
    import re

    kept = {"shard-00000.bin": b"shard", "spill-notes.bin": b"mine", "spill-0123.bin.bak": b"mine too"}
    for name, data in kept.items():
        (tmp_path / name).write_bytes(data)
    spilled = []
    for _ in range(3):
        writer = SpillWriter(str(tmp_path), np.dtype("int32"))
        spilled.append(writer.append(np.ones(7, dtype=np.int32)))
        writer.close()
    assert all(re.fullmatch(SPILL_NAME, Path(p.path).name) for p in spilled)
    assert remove_spills(str(tmp_path)) == 3
    assert sorted(os.listdir(tmp_path)) == sorted(kept)
    assert remove_spills(str(tmp_path / "absent")) == 0  # a build that never tokenized


def test_a_tokenized_document_carries_where_its_ids_are_not_the_ids(tmp_path: Path) -> None:
    """`TokenizeFn` on real pages and code: one spill file per bundle, complete when the bundle
    finishes; each document's ids read back equal to what the tokenizer gives, and the record that
    waits for the mixture's plan pickles to a few hundred bytes whatever its length."""
    import pickle

    from benchmarks.common import real_texts
    from lemur_corpus.config import TokenizerConfig
    from lemur_corpus.document import Document
    from lemur_corpus.pipelines.tokenize import TokenizeFn
    from lemur_corpus.tokenizer import encode_batch, load_tokenizer, tokenizer_identity
    from tests.conftest import shared_path

    texts = real_texts(shared_path())[:60]
    config = TokenizerConfig()
    identity = tokenizer_identity(config)
    fn = TokenizeFn(config, identity, keep_text=False, spill_folder=str(tmp_path / "shards"))
    fn.setup()
    docs = [Document(f"web/{i}", "refinedweb", "text", text) for i, text in enumerate(texts)]
    bundles = []
    for half in (docs[:30], docs[30:]):
        fn.start_bundle()
        bundles.append([out for batch in (half[:16], half[16:]) for out in fn.process(batch)])
        fn.finish_bundle()
    fn.teardown()
    tokenized = [doc for bundle in bundles for doc in bundle]
    assert [d.id for d in tokenized] == [d.id for d in docs] and all(d.text is None for d in tokenized)
    assert len({d.spilled.path for d in bundles[0]}) == len({d.spilled.path for d in bundles[1]}) == 1
    assert len(os.listdir(tmp_path / "shards")) == 2
    expected = encode_batch(load_tokenizer(config), texts, identity.eos_id, np.dtype(identity.dtype))
    got = read_spilled([d.spilled for d in tokenized], np.dtype(identity.dtype))
    assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))
    assert [d.length for d in tokenized] == [len(ids) for ids in expected]
    longest = max(tokenized, key=lambda d: d.length)
    assert longest.length > 1_000 and len(pickle.dumps(longest)) < 400


@settings(max_examples=40, deadline=None)
@given(texts=st.lists(st.text(st.characters(codec=None, blacklist_categories=()), max_size=300), max_size=20),
       data=st.data())
def test_parked_documents_read_back_equal(tmp_path_factory: pytest.TempPathFactory, texts: list[str],
                                          data: st.DataObject) -> None:
    """Any text, lone surrogates and empty ones included (normalization removes the surrogates, but a
    parked document must come back as it went), with its metadata, in any order asked."""
    folder = tmp_path_factory.mktemp("parked")
    spill = BundleSpill(str(folder), PARKED_DTYPE)
    docs = [Document(id=f"d{n}", source="web", kind="text", text=text, lang="en",
                     meta={"url": f"https://example.org/{n}", "scores": [n, 0.5]}, origin=f"f.jsonl:{n}")
            for n, text in enumerate(texts)]
    places = [park_document(spill, doc) for doc in docs]
    spill.close()
    spill.close()  # closing twice is closing once
    order = data.draw(st.permutations(range(len(texts))))
    assert read_documents([places[i] for i in order]) == [docs[i] for i in order]
    assert len(list(folder.iterdir())) == (1 if texts else 0)  # one file a bundle, none for an empty one
    assert remove_spills(str(folder)) == (1 if texts else 0)
