"""Tokenizer loading: the shipped default, a file path, a hub id through the hub cache (offline)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from lemur_corpus.config import TokenizerConfig
from lemur_corpus.errors import ConfigError
from lemur_corpus.tokenizer import default_tokenizer_path, encode_batch, load_tokenizer, token_dtype, tokenizer_identity


def test_default_is_the_wheel_tokenizer() -> None:
    identity = tokenizer_identity(TokenizerConfig())
    assert identity.vocab_size == 129_280 and identity.dtype == "int32"
    assert identity.eos_token == "<｜end▁of▁sentence｜>"
    tokenizer = load_tokenizer(TokenizerConfig())
    assert tokenizer.token_to_id(identity.eos_token) == identity.eos_id


def test_eos_appended_and_no_other_special_tokens() -> None:
    identity = tokenizer_identity(TokenizerConfig())
    tokenizer = load_tokenizer(TokenizerConfig())
    texts = ["def add(a, b):\n    return a + b\n", "Lemur mixes code and text 10:1."]
    out = encode_batch(tokenizer, texts, identity.eos_id, np.dtype(identity.dtype))
    for text, ids in zip(texts, out, strict=True):
        assert ids[-1] == identity.eos_id
        assert list(ids[:-1]) == tokenizer.encode(text, add_special_tokens=False).ids
        assert tokenizer.decode(list(ids[:-1])) == text


def test_hub_id_loads_from_the_hub_cache_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--deepseek-ai--DeepSeek-V4"
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    shutil.copy(default_tokenizer_path(), repo / "snapshots" / commit / "tokenizer.json")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    from lemur_corpus import tokenizer as tok

    tok._load_serialized.cache_clear()
    tok._built_tokenizer.cache_clear()
    config = TokenizerConfig(hub_id="deepseek-ai/DeepSeek-V4", eos_token="<｜end▁of▁sentence｜>")
    identity = tokenizer_identity(config)
    assert identity.sha256 == tokenizer_identity(TokenizerConfig()).sha256
    assert identity.origin == "hub:deepseek-ai/DeepSeek-V4" and identity.name == "deepseek-ai/DeepSeek-V4"
    missing = TokenizerConfig(hub_id="nobody/not-cached")
    with pytest.raises(ConfigError, match="cannot load hub id 'nobody/not-cached'"):
        tokenizer_identity(missing)
    tok._load_serialized.cache_clear()
    tok._built_tokenizer.cache_clear()


def test_bad_tokenizer_files_fail_before_data(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        tokenizer_identity(TokenizerConfig(path=str(tmp_path / "missing.json")))
    broken = tmp_path / "tokenizer.json"
    broken.write_text('{"not": "a tokenizer"}')
    with pytest.raises(ConfigError, match="does not load"):
        tokenizer_identity(TokenizerConfig(path=str(broken)))
    with pytest.raises(ConfigError, match="not in the vocabulary"):
        tokenizer_identity(TokenizerConfig(eos_token="<no such token>"))


def test_dtype_follows_megatron_rule() -> None:
    assert token_dtype(32_000) == np.uint16
    assert token_dtype(65_499) == np.uint16
    assert token_dtype(65_500) == np.int32
    with pytest.raises(ConfigError, match="does not fit"):
        token_dtype(2**31 + 5)
    assert token_dtype(32_000, "int32") == np.int32
    with pytest.raises(ConfigError, match="uint16 cannot hold the ids of a 129,280-token vocabulary"):
        tokenizer_identity(TokenizerConfig(), "uint16")


def test_workers_encode_on_the_calling_thread_unless_the_user_says_otherwise(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`TokenizeFn.setup` turns tokenizers' thread pool off (a worker is one core), leaving a value
    the user set; the ids are the same both ways, on real code and web text."""
    from lemur_corpus.pipelines.tokenize import TokenizeFn
    from lemur_corpus.tokenizer import PARALLELISM_VARIABLE
    from tests.conftest import shared_path

    monkeypatch.delenv(PARALLELISM_VARIABLE, raising=False)
    config = TokenizerConfig()
    fn = TokenizeFn(config, tokenizer_identity(config), keep_text=False, spill_folder=str(tmp_path))
    fn.setup()
    assert os.environ[PARALLELISM_VARIABLE] == "false"
    monkeypatch.setenv(PARALLELISM_VARIABLE, "true")
    fn.setup()
    assert os.environ[PARALLELISM_VARIABLE] == "true"

    from benchmarks.common import real_texts

    texts = real_texts(shared_path())[:200]
    tokenizer = load_tokenizer(config)
    pooled = encode_batch(tokenizer, texts, 1, np.dtype("int32"))
    monkeypatch.setenv(PARALLELISM_VARIABLE, "false")
    alone = encode_batch(tokenizer, texts, 1, np.dtype("int32"))
    assert len(pooled) == len(alone) == len(texts)
    assert all(np.array_equal(a, b) for a, b in zip(pooled, alone, strict=True))


@pytest.mark.parametrize("trim", [True, False])
def test_a_worker_trims_its_heap_after_each_batch_it_encodes(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, trim: bool) -> None:
    """`TokenizeFn` asks for a trim after every batch (`worker_memory.trim_heap` decides how often
    one runs), so the encodings a task's batches freed do not pile up in the heap until the task
    ends; the ids it spills are the same either way."""
    from lemur_corpus.document import Document
    from lemur_corpus.pipelines import tokenize
    from lemur_corpus.token_spill import read_spilled

    trims: list[int] = []
    monkeypatch.setattr(tokenize, "trim_heap", lambda: trims.append(1))
    monkeypatch.setattr(tokenize, "TRIM_AFTER_BATCH", trim)
    config = TokenizerConfig()
    identity = tokenizer_identity(config)
    fn = tokenize.TokenizeFn(config, identity, keep_text=False, spill_folder=str(tmp_path / str(trim)))
    fn.setup()
    fn.start_bundle()
    batches = [[Document(id=f"d{b}-{i}", source="web", kind="text", text=f"batch {b} text {i} " * 20, meta={},
                         origin=f"web.jsonl:{i + 1}") for i in range(5)] for b in range(3)]
    out = [doc for batch in batches for doc in fn.process(batch)]
    fn.finish_bundle()
    assert len(trims) == (3 if trim else 0)
    want = encode_batch(load_tokenizer(config), [d.text for batch in batches for d in batch], identity.eos_id,
                        np.dtype(identity.dtype))
    got = read_spilled([doc.spilled for doc in out], np.dtype(identity.dtype))
    assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True)) and len(got) == 15
