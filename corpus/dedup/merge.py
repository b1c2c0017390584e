"""Compaction of dedup indexes: many builds' indexes folded into one (`corpus dedup-index merge`).

Every input is checked whole first (header, every file's size and sha256; `index.open_index`), and
all inputs of a kind must have the same settings and no build in common; nothing is written before
that. The merged index has every row of every input (a row is a published document: none is ever
dropped), redistributed into `parts` files by a hash of (build, id) and sorted inside each, and a
header listing the builds in input order (so week 52 reads one index, not 52). Same inputs in the
same order → the same bytes; each file written is read back and its sha256 compared with the
header's before the merge reports success.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from lemur_corpus.dedup.index import (
    HEADER_NAME,
    DedupIndexError,
    IndexHandle,
    IndexRow,
    file_entry,
    find_kind_folder,
    header_bytes,
    make_header,
    open_index,
    part_bytes,
    part_name,
    read_part,
    sha256_file,
    shard_of,
    table_rows,
)

KINDS = ("code", "text")


def kinds_in(path: str) -> list[str]:
    found = []
    for kind in KINDS:
        try:
            find_kind_folder(path, kind)
        except DedupIndexError:
            continue
        found.append(kind)
    return found


def check_inputs(paths: Sequence[str], kind: str) -> list[IndexHandle]:
    """Every input's index of `kind`, checked, with one settings and distinct builds."""
    handles = [open_index(path, kind) for path in paths]
    first = handles[0]
    seen: dict[str, str] = {}
    for handle in handles:
        where = os.path.join(handle.folder, HEADER_NAME)
        if handle.header["settings"] != first.header["settings"]:
            mine, theirs = handle.header["settings"], first.header["settings"]
            keys = sorted(k for k in set(mine.get("near") or {}) | set(theirs.get("near") or {})
                          if (mine.get("near") or {}).get(k) != (theirs.get("near") or {}).get(k))
            what = (f"dedup.{kind}.{keys[0]} = {(mine.get('near') or {}).get(keys[0])!r} there, "
                    f"{(theirs.get('near') or {}).get(keys[0])!r} in {first.folder}") if keys else "other settings"
            raise DedupIndexError(f"dedup index {where} was built with other dedup settings than {first.folder}: "
                                  f"{what}")
        for build in handle.builds:
            if build in seen:
                raise DedupIndexError(f"dedup index {where}: build {build!r} is also in {seen[build]}; "
                                      "merge each build once")
            seen[build] = where
    return handles


def merge_kind(handles: list[IndexHandle], folder: str, parts: int) -> dict[str, Any]:
    """Write the merged index of one kind into `folder`; return its header."""
    from lemur_corpus.io import write_atomic

    buckets: list[list[IndexRow]] = [[] for _ in range(parts)]
    for handle in handles:
        for path, _ in handle.files():
            with open(path, "rb") as f:
                data = f.read()
            for row in table_rows(read_part(data, path)):
                buckets[shard_of(row[0], row[2], parts)].append(row)
    os.makedirs(folder, exist_ok=True)
    files = []
    for number, rows in enumerate(buckets):
        name = part_name(number, parts)
        data = part_bytes(rows)
        write_atomic(os.path.join(folder, name), data)
        files.append(file_entry(name, data, len(rows)))
    builds = [b for handle in handles for b in handle.header["builds"]]
    header = make_header(handles[0].header["settings"], builds, files)
    write_atomic(os.path.join(folder, HEADER_NAME), header_bytes(header))
    for entry in files:  # read back: what the header promises is what is on disk
        if sha256_file(os.path.join(folder, entry["name"])) != entry["sha256"]:
            raise DedupIndexError(f"merged index {folder}: {entry['name']} does not read back as written")
    return header
