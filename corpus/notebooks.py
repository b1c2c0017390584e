"""Jupyter notebooks to scripts: code cells in order, markdown cells as comments, outputs dropped.

Comment syntax follows the notebook's kernel language (`#` for Python, R, Julia, shell; `//` for
the C family and JavaScript; `--` for SQL). Raw cells are dropped. Anything that is not an nbformat
notebook raises `NotebookError` with the reason, which the normalizer records as a drop.
"""

from __future__ import annotations

import json
from typing import Any

_COMMENT = {
    "python": "#", "r": "#", "julia": "#", "bash": "#", "sh": "#", "ruby": "#", "perl": "#",
    "javascript": "//", "typescript": "//", "java": "//", "c": "//", "c++": "//", "cpp": "//",
    "scala": "//", "kotlin": "//", "go": "//", "rust": "//", "csharp": "//", "c#": "//",
    "sql": "--", "haskell": "--", "lua": "--",
}


class NotebookError(ValueError):
    pass


def _source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    if isinstance(source, list):
        if not all(isinstance(s, str) for s in source):
            raise NotebookError("a cell's source list holds something other than strings")
        return "".join(source)
    if isinstance(source, str):
        return source
    raise NotebookError(f"a cell's source is {type(source).__name__}, expected text")


def notebook_language(nb: dict[str, Any]) -> str:
    metadata = nb.get("metadata") if isinstance(nb.get("metadata"), dict) else {}
    info = metadata.get("language_info") if isinstance(metadata.get("language_info"), dict) else {}
    kernel = metadata.get("kernelspec") if isinstance(metadata.get("kernelspec"), dict) else {}
    name = info.get("name") or kernel.get("language") or "python"
    return str(name).lower()


def notebook_to_script(raw: str) -> tuple[str, str]:
    """(script, kernel language) of an .ipynb document."""
    try:
        nb = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise NotebookError(f"not JSON: {exc}") from None
    if not isinstance(nb, dict):
        raise NotebookError("the notebook is not a JSON object")
    cells = nb.get("cells")
    if cells is None and isinstance(nb.get("worksheets"), list):  # nbformat 3
        cells = [c for ws in nb["worksheets"] if isinstance(ws, dict) for c in ws.get("cells", [])]
    if not isinstance(cells, list):
        raise NotebookError("no 'cells' list")
    language = notebook_language(nb)
    comment = _COMMENT.get(language, "#")
    parts: list[str] = []
    for cell in cells:
        if not isinstance(cell, dict):
            raise NotebookError("a cell is not a JSON object")
        cell_type = cell.get("cell_type")
        if cell_type == "code":
            text = _source(cell) if "source" in cell else "".join(cell.get("input", []))
            if text.strip():
                parts.append(text.rstrip("\n"))
        elif cell_type in ("markdown", "heading"):
            text = _source(cell)
            if text.strip():
                parts.append("\n".join(f"{comment} {line}".rstrip() for line in text.splitlines()))
        elif cell_type == "raw":
            continue
        else:
            raise NotebookError(f"unknown cell type {cell_type!r}")
    return "\n\n".join(parts) + ("\n" if parts else ""), language
