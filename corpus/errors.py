"""Errors that reach the user as one clear line, never as a traceback from inside Beam."""

from __future__ import annotations


class CorpusError(Exception):
    """Base of every error the command line reports as a message (exit code 2)."""


class ConfigError(CorpusError):
    """The configuration or the command-line arguments are wrong; raised before any data is read."""


class InputFileError(CorpusError):
    """A whole input file cannot be used (missing, unreadable, corrupted, empty): the build stops."""

    def __init__(self, path: str, reason: str, line: int | None = None) -> None:
        self.path = path
        self.reason = reason
        self.line = line
        where = f"{path}, line {line}" if line is not None else path
        super().__init__(f"{where}: {reason}")

    def to_dict(self) -> dict[str, object]:
        return {"path": self.path, "line": self.line, "reason": self.reason}
