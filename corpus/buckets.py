"""Which mixture bucket a code file belongs to: The Stack's `lang`, or failing that its extension.

The tables are config (`code_buckets` in the build config); these are the defaults. Lemur's Table 8
names nine languages and an "Others" bucket; a language mapped to no bucket is dropped by the code
filters with the reason `language_not_allowed` (its documents carry the source `unbucketed`).
"""

from __future__ import annotations

import posixpath

from pydantic import Field

from lemur_corpus.configbase import StrictModel

UNBUCKETED = "unbucketed"

# The Stack v1 `lang` values (GitHub linguist names) for the extensions we meet most.
DEFAULT_LANGUAGE_BY_EXTENSION: dict[str, str] = {
    ".py": "Python", ".pyi": "Python", ".pyw": "Python",
    ".sql": "SQL", ".ddl": "SQL", ".pgsql": "PLpgSQL", ".psql": "PLpgSQL", ".plsql": "PLSQL",
    ".sh": "Shell", ".bash": "Shell", ".zsh": "Shell", ".ksh": "Shell", ".bats": "Shell",
    ".ipynb": "Jupyter Notebook",
    ".java": "Java",
    ".js": "JavaScript", ".mjs": "JavaScript", ".cjs": "JavaScript", ".jsx": "JavaScript",
    ".c": "C", ".h": "C",  # The Stack files every .h under C; the syntax filter retries C++
    ".php": "PHP", ".phtml": "PHP",
    ".cpp": "C++", ".cc": "C++", ".cxx": "C++", ".hpp": "C++", ".hh": "C++", ".hxx": "C++",
    ".cu": "Cuda", ".cuh": "Cuda",
    ".ts": "TypeScript", ".tsx": "TypeScript", ".mts": "TypeScript", ".cts": "TypeScript",
    ".go": "Go", ".rs": "Rust", ".rb": "Ruby", ".rake": "Ruby", ".cs": "C#", ".kt": "Kotlin",
    ".kts": "Kotlin", ".scala": "Scala", ".swift": "Swift", ".lua": "Lua", ".pl": "Perl", ".pm": "Perl",
    ".r": "R", ".jl": "Julia", ".f": "Fortran", ".f90": "Fortran", ".pyx": "Cython", ".pxd": "Cython",
    ".hs": "Haskell", ".ml": "OCaml", ".dart": "Dart", ".groovy": "Groovy", ".ex": "Elixir",
    ".exs": "Elixir", ".erl": "Erlang", ".clj": "Clojure", ".ps1": "PowerShell", ".bat": "Batchfile",
    ".cmd": "Batchfile", ".asm": "Assembly", ".s": "Assembly", ".vue": "Vue", ".m": "Objective-C",
    ".md": "Markdown", ".rst": "reStructuredText", ".json": "JSON", ".yaml": "YAML",
    ".yml": "YAML", ".xml": "XML", ".csv": "CSV", ".html": "HTML", ".css": "CSS",
    ".toml": "TOML", ".proto": "Protocol Buffer",
}

DEFAULT_BUCKET_BY_LANGUAGE: dict[str, str] = {
    "Python": "python",
    "SQL": "sql", "PLSQL": "sql", "PLpgSQL": "sql", "TSQL": "sql",
    "Shell": "shell", "Bash": "shell",
    "Jupyter Notebook": "notebooks",
    "Java": "java",
    "JavaScript": "javascript",
    "C": "c",
    "PHP": "php",
    "C++": "cpp",
    # "Others": the rest of The Stack's programming languages. Data, markup and prose formats
    # (Markdown, JSON, YAML, XML, CSV, HTML) are not code and map to no bucket.
    "TypeScript": "others", "Go": "others", "Rust": "others", "Ruby": "others", "C#": "others",
    "Kotlin": "others", "Scala": "others", "Swift": "others", "Lua": "others", "Perl": "others",
    "R": "others", "Julia": "others", "Fortran": "others", "Cuda": "others", "Cython": "others",
    "Haskell": "others", "OCaml": "others", "Dart": "others", "Objective-C": "others",
    "Protocol Buffer": "others", "Assembly": "others", "Visual Basic": "others", "Groovy": "others",
    "Elixir": "others", "Erlang": "others", "Clojure": "others", "PowerShell": "others",
    "Batchfile": "others", "Vue": "others", "Objective-C++": "others", "F#": "others",
    "Common Lisp": "others", "Scheme": "others", "Racket": "others", "Zig": "others", "Nim": "others",
    "Pascal": "others", "Ada": "others", "COBOL": "others", "Prolog": "others", "Tcl": "others",
    "Verilog": "others", "VHDL": "others", "SystemVerilog": "others", "Solidity": "others",
    "CMake": "others", "Makefile": "others", "Dockerfile": "others", "TeX": "others",
}


class CodeBucketsConfig(StrictModel):
    language_by_extension: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_LANGUAGE_BY_EXTENSION))
    """File extension (lowercase, with the dot) to language, used when a record has no language."""
    bucket_by_language: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_BUCKET_BY_LANGUAGE))
    """Language to mixture bucket; a language absent here is not allowed."""


def language_of(lang: str | None, path: str | None, table: CodeBucketsConfig) -> str:
    """The record's own language when it has one, else the language of its file extension, else ''."""
    if lang:
        return lang
    if not path:
        return ""
    ext = posixpath.splitext(path.lower())[1]
    return table.language_by_extension.get(ext, "")


def bucket_of(language: str, table: CodeBucketsConfig) -> str:
    return table.bucket_by_language.get(language, UNBUCKETED)
