"""Jupyter notebooks to scripts: code cells in order, markdown cells as comments, outputs dropped.

This is what StarCoder did with The Stack's notebooks (bigcode-dataset `jupyter_script_conversion.py`,
via jupytext): the script keeps the code and the prose that explains it, and drops outputs, execution
counts, metadata and attachments, which are data rather than code.

- Comment syntax follows the notebook's kernel language (`#` for Python, R, Julia, shell; `//` for the
  C family and JavaScript; `--` for SQL, Haskell, Lua).
- In Python notebooks, IPython syntax is commented out as jupytext does (`# %matplotlib inline`,
  `# !pip install x`, `# df?`), so the script is Python; a cell run by a non-Python cell magic
  (`%%bash`, `%%html`, `%%sql`...) is commented out whole. Cell magics whose body is Python
  (`%%time`, `%%timeit`, `%%capture`...) keep their body.
- Raw cells are dropped; nbformat 3 (`worksheets`, `input`) is read as well as 4.
- Anything that is not a notebook raises `NotebookError` with the reason, which the normalizer
  records as the drop `invalid_notebook`.
"""

from __future__ import annotations

import json
import re
from typing import Any

_COMMENT = {
    "python": "#", "r": "#", "julia": "#", "bash": "#", "sh": "#", "ruby": "#", "perl": "#",
    "powershell": "#", "javascript": "//", "typescript": "//", "java": "//", "c": "//", "c++": "//",
    "cpp": "//", "scala": "//", "kotlin": "//", "go": "//", "rust": "//", "csharp": "//", "c#": "//",
    "swift": "//", "sql": "--", "haskell": "--", "lua": "--",
}
PYTHON_KERNELS = frozenset({"python", "python2", "python3", "ipython", "ipython2", "ipython3"})
# Cell magics whose body is still Python code.
PYTHON_BODY_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug", "pypy", "python", "python3"})
_LINE_MAGIC = re.compile(r"^\s*(?:[%!]|\?\??\w)")
_HELP_SUFFIX = re.compile(r"^\s*[\w.]+\?\??\s*$")


class NotebookError(ValueError):
    pass


def _source(cell: dict[str, Any], key: str = "source") -> str:
    source = cell.get(key, "")
    if source is None:
        return ""
    if isinstance(source, list):
        if not all(isinstance(s, str) for s in source):
            raise NotebookError(f"a cell's {key} list holds something other than strings")
        return "".join(source)
    if isinstance(source, str):
        return source
    raise NotebookError(f"a cell's {key} is {type(source).__name__}, expected text")


def _as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def notebook_language(nb: dict[str, Any]) -> str:
    """The kernel language (lowercase) from `language_info` or `kernelspec`; Python by default."""
    metadata = _as_dict(nb.get("metadata"))
    info = _as_dict(metadata.get("language_info"))
    kernel = _as_dict(metadata.get("kernelspec"))
    name = info.get("name") or kernel.get("language") or "python"
    return str(name).strip().lower() or "python"


def comment_lines(text: str, comment: str) -> str:
    return "\n".join(f"{comment} {line}".rstrip() for line in text.splitlines())


def python_code_cell(text: str) -> str:
    """A Python cell with IPython syntax commented out (jupytext's convention)."""
    lines = text.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        magic = lines[0].lstrip()[2:].split(maxsplit=1)
        if not magic or magic[0] not in PYTHON_BODY_CELL_MAGICS:
            return comment_lines(text, "#")
        lines = [f"# {lines[0].strip()}", *lines[1:]]
    return "\n".join(
        f"# {line.strip()}" if _LINE_MAGIC.match(line) or _HELP_SUFFIX.match(line) else line for line in lines
    )


def _cells(nb: dict[str, Any]) -> list[Any]:
    cells = nb.get("cells")
    if cells is None and isinstance(nb.get("worksheets"), list):  # nbformat 3
        cells = [c for ws in nb["worksheets"] if isinstance(ws, dict) for c in (ws.get("cells") or [])]
    if not isinstance(cells, list):
        raise NotebookError("no 'cells' list")
    return cells


def notebook_to_script(raw: str) -> tuple[str, str]:
    """(script, kernel language) of an .ipynb document."""
    try:
        nb = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise NotebookError(f"not JSON: {exc}") from None
    if not isinstance(nb, dict):
        raise NotebookError("the notebook is not a JSON object")
    cells = _cells(nb)
    language = notebook_language(nb)
    comment = _COMMENT.get(language, "#")
    python = language in PYTHON_KERNELS
    parts: list[str] = []
    for cell in cells:
        if not isinstance(cell, dict):
            raise NotebookError("a cell is not a JSON object")
        cell_type = cell.get("cell_type")
        if cell_type == "code":
            text = _source(cell) if "source" in cell else _source(cell, "input")
            if text.strip():
                parts.append((python_code_cell(text) if python else text).rstrip("\n"))
        elif cell_type in ("markdown", "heading"):
            text = _source(cell)
            if text.strip():
                parts.append(comment_lines(text, comment))
        elif cell_type == "raw":
            continue
        else:
            raise NotebookError(f"unknown cell type {cell_type!r}")
    return "\n\n".join(parts) + ("\n" if parts else ""), language
