"""The source registry: which function plans each input format, and which reads each container.

`plan_input` runs on the driver before any data is read: it expands globs (a pattern that matches
nothing is an error naming it), checks files are non-empty and readable, and cuts the input into tasks
(one per file; one per Hugging Face shard; batches of files for the local environment).
`read_task` runs on a worker and yields `Document`s and `Drop`s (bad records, with file and line);
a file that cannot be read at all raises `InputFileError`.

Both dispatch through the two tables below, and this is the only module that imports the readers
(they import what they share from `base`, never this module):

- `PLANNERS`: input format (`InputConfig.format`) -> `plan(inp, config) -> (tasks, files)`. The file
  formats share `base.plan_files` (globs, one task per file, the container told by the file name);
  `hf` and `local_env` plan their own tasks.
- `READERS`: container (`ReadTask.container`) -> `read(task, inp, config) -> Documents and Drops`.

To add a format: write its reader module (`read_*`, and `plan_*` unless `plan_files` fits), add one
entry here (to `PLANNERS`, and to `READERS` for a new container), and name it in `InputFormat`
(config.py) or `Container` (base.py). tests/test_sources.py checks that the names and tables agree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from lemur_corpus.accounting import Drop
from lemur_corpus.config import BuildConfig, InputConfig, InputFormat
from lemur_corpus.document import Document
from lemur_corpus.errors import ConfigError
from lemur_corpus.io import InputFile
from lemur_corpus.sources.base import Container, ReadTask, plan_files
from lemur_corpus.sources.files import read_jsonl, read_parquet
from lemur_corpus.sources.hf import plan_hf, read_hf
from lemur_corpus.sources.local_env import plan_local_env, read_local_env
from lemur_corpus.sources.warc import read_warc

Planner = Callable[[InputConfig, BuildConfig], tuple[list[ReadTask], list[InputFile]]]
Reader = Callable[[ReadTask, InputConfig, BuildConfig], Iterator[Document | Drop]]

PLANNERS: dict[InputFormat, Planner] = {
    "stack": plan_files,
    "refinedweb": plan_files,
    "redpajama": plan_files,
    "dolma": plan_files,
    "jsonl": plan_files,
    "warc": plan_files,
    "hf": plan_hf,
    "local_env": plan_local_env,
}

READERS: dict[Container, Reader] = {
    "jsonl": read_jsonl,
    "parquet": read_parquet,
    "warc": read_warc,
    "hf": read_hf,
    "local_env": read_local_env,
}


def plan_input(inp: InputConfig, config: BuildConfig) -> tuple[list[ReadTask], list[InputFile]]:
    """The read tasks of one input and the files it will read (for the manifest)."""
    plan = PLANNERS.get(inp.format)
    if plan is None:
        raise ConfigError(
            f"input {inp.name!r}: unknown format {inp.format!r}; expected one of {', '.join(PLANNERS)}"
        )
    return plan(inp, config)


def read_task(task: ReadTask, config: BuildConfig) -> Iterator[Document | Drop]:
    inp = next(i for i in config.inputs if i.name == task.input_name)
    read = READERS.get(task.container)
    if read is None:  # pragma: no cover - the planners only make the containers above
        raise ValueError(f"unknown container {task.container!r}")
    yield from read(task, inp, config)
