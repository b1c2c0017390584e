"""Helpers shared by the benchmark scripts: the real data folder and a JSONL reader."""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import zstandard

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("LEMUR_SHARED_DATA", REPO.parent / "shared" / "data"))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    raw = path.read_bytes()
    if path.suffix == ".zst":
        raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)).read()
    return [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]


def require_data(path: str | Path) -> Path:
    """The real sample data folder, or exit with one line saying where it was looked for."""
    data = Path(path)
    if not data.exists():  # a user's mistake: one line and exit 2, as argparse's
        print(f"error: real sample data not found at {data} (pass --data or set LEMUR_SHARED_DATA)", file=sys.stderr)
        raise SystemExit(2)
    return data


def real_texts(data: Path) -> list[str]:
    """Every real document of the sample data: code contents and web page texts."""
    require_data(data)
    texts = [r["content"] for r in read_jsonl(data / "code" / "code_sample.jsonl.zst")]
    for name in sorted((data / "web").glob("*.jsonl.zst")):
        texts.extend(r["text"] for r in read_jsonl(name))
    return texts


def pieces(text: str, size: int) -> list[str]:
    """`text` cut at line ends into pieces of about `size` characters (all of it, in order)."""
    out, start = [], 0
    while start < len(text):
        end = text.find("\n", start + size)
        end = len(text) if end < 0 else end + 1
        out.append(text[start:end])
        start = end
    return out


def memory_limit(text: str) -> str:
    """An argparse type: a Dask worker memory limit as `dask worker --memory-limit` takes it ("0": none,
    "auto", "1.5GiB", "800MB"), checked here so a typo is one argparse line, not a worker that fails to start."""
    from dask.utils import parse_bytes

    if text.strip() not in ("0", "auto"):
        try:
            if parse_bytes(text) < 1:
                raise ValueError(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a memory size (e.g. 1GiB, 800MB; 0: none)") from None
    return text


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1 (a count of runs, files, documents)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def non_negative_int(text: str) -> int:
    """An argparse type: an integer of at least 0 (0: a setting's "off" or "automatic")."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value
