"""Hugging Face datasets through `datasets`: hub ids streamed when online, local files read directly.

Streaming datasets are split into tasks by their shards (`IterableDataset.n_shards`), so workers read
in parallel. Offline, a hub id fails at planning time with the hub's message; local builders
(`parquet`, `json` with `data_files`) and saved dataset folders work without network.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from lemur_corpus.accounting import Drop
from lemur_corpus.config import BuildConfig, HFDatasetConfig, InputConfig
from lemur_corpus.document import Document
from lemur_corpus.errors import InputFileError
from lemur_corpus.io import InputFile
from lemur_corpus.sources.base import ReadTask
from lemur_corpus.sources.files import record_to_item

_LOCAL_BUILDERS = {"parquet", "json", "csv", "arrow", "text"}


def _streaming(hf: HFDatasetConfig) -> bool:
    if hf.streaming is not None:
        return hf.streaming
    return not (hf.id in _LOCAL_BUILDERS or os.path.exists(hf.id))


def _load(hf: HFDatasetConfig) -> Any:
    import datasets

    kwargs: dict[str, Any] = {"split": hf.split, "streaming": _streaming(hf)}
    if hf.name:
        kwargs["name"] = hf.name
    if hf.revision:
        kwargs["revision"] = hf.revision
    if hf.data_files:
        kwargs["data_files"] = hf.data_files
    if hf.data_dir:
        kwargs["data_dir"] = hf.data_dir
    if os.path.isdir(hf.id) and os.path.exists(os.path.join(hf.id, "dataset_info.json")):
        return datasets.load_from_disk(hf.id)
    return datasets.load_dataset(hf.id, **kwargs)


def _describe(hf: HFDatasetConfig) -> str:
    return f"hf:{hf.id}" + (f"/{hf.name}" if hf.name else "") + f"[{hf.split}]"


def plan_hf(inp: InputConfig, config: BuildConfig) -> tuple[list[ReadTask], list[InputFile]]:
    """One task per shard of a streamed dataset (one for a local one); `config` is unused."""
    assert inp.hf is not None
    label = _describe(inp.hf)
    try:
        dataset = _load(inp.hf)
    except Exception as exc:
        raise InputFileError(label, f"cannot load the dataset: {type(exc).__name__}: {exc}") from None
    shards = int(getattr(dataset, "n_shards", 1) or 1) if _streaming(inp.hf) else 1
    files = [InputFile(f, os.path.getsize(f)) for f in sorted(inp.hf.data_files or []) if os.path.exists(f)]
    size = -(-sum(f.size for f in files) // shards)  # local files: their bytes, dealt to the shards; else unknown
    tasks = [ReadTask(inp.name, "hf", path=label, size=size, part=i, parts=shards) for i in range(shards)]
    return tasks, files or [InputFile(label, 0)]


def read_hf(task: ReadTask, inp: InputConfig, config: BuildConfig) -> Iterator[Document | Drop]:
    assert inp.hf is not None
    try:
        dataset = _load(inp.hf)
        if task.parts > 1:
            dataset = dataset.shard(num_shards=task.parts, index=task.part)
    except Exception as exc:
        raise InputFileError(task.path, f"cannot load the dataset: {type(exc).__name__}: {exc}") from None
    limit = inp.limit_per_file
    for row, record in enumerate(dataset):
        if limit is not None and row >= limit:
            return
        nbytes = sum(len(v) for v in record.values() if isinstance(v, str))
        yield record_to_item(dict(record), inp, config, f"{task.path}#shard{task.part}:row{row + 1}", nbytes)
