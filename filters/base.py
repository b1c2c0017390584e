"""The filter contract: a filter is a callable `Document -> Verdict`, pure but for its loaded model.

A verdict says keep or drop, names the reason (`<filter>.<rule>`), and carries the signals (numbers)
the decision was made from, so anyone can inspect and compare decisions. Line-level filters (C4)
return the edited text and what they removed; filters that learn something about a document (the
language and its score) return it as `meta` to merge into the document.

`run_chain` applies filters in order (cheap before expensive): the first drop ends the chain, so a
dropped document is never scored by the filters after it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from lemur_corpus.document import Document
from lemur_corpus.errors import ConfigError, caused_by_interrupt


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    keep: bool
    reason: str = ""
    """Empty when kept; else `<filter>.<rule>`, e.g. `gopher_quality.mean_word_length`."""
    signals: Mapping[str, float] = dataclasses.field(default_factory=dict)
    text: str | None = None
    """Line-level filters: the edited text; None when the text is unchanged."""
    removed: Mapping[str, int] = dataclasses.field(default_factory=dict)
    """Line-level filters: what was removed, e.g. {"lines.javascript": 2}."""
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Facts to record in the document's meta (e.g. {"language": "en", "language_score": 0.93})."""

    @staticmethod
    def kept(signals: Mapping[str, float] | None = None, **kwargs: Any) -> Verdict:
        return Verdict(True, "", dict(signals or {}), **kwargs)

    @staticmethod
    def dropped(reason: str, signals: Mapping[str, float] | None = None, **kwargs: Any) -> Verdict:
        return Verdict(False, reason, dict(signals or {}), **kwargs)


@runtime_checkable
class Filter(Protocol):
    name: str

    def __call__(self, doc: Document) -> Verdict: ...


@runtime_checkable
class DescribesKept(Protocol):
    """A filter that measures some signals only to describe a kept document, which can be skipped."""

    kept_signals: bool


def filter_name_problem(kind: str, names: Sequence[str], known: Sequence[str]) -> str:
    """Why a list of filter names is not a valid chain of `kind` ('' when it is): each name must be
    known and appear once. Config validators and the build functions of every kind share it."""
    unknown = [n for n in names if n not in known]
    if unknown:
        return f"unknown {kind} filter(s): {', '.join(unknown)} (known: {', '.join(known)})"
    repeated = sorted({n for n in names if list(names).count(n) > 1})
    if repeated:
        return f"{kind} filter(s) named twice: {', '.join(repeated)}"
    return ""


def build_chain(kind: str, names: Sequence[str], factories: Mapping[str, Callable[[Any], Filter]],
                config: Any) -> list[Filter]:
    """The filters named (in that order), each made by its factory from the kind's config; an unknown
    or repeated name is a ConfigError before anything runs."""
    problem = filter_name_problem(kind, names, list(factories))
    if problem:
        raise ConfigError(problem)
    return [factories[name](config) for name in names]


def setup_filters(filters: Sequence[Filter]) -> None:
    """Load models and grammars (once per worker, from `DoFn.setup`)."""
    for f in filters:
        setup = getattr(f, "setup", None)
        if callable(setup):
            setup()


def drop_signals_only(filters: Sequence[Filter]) -> None:
    """Tell the filters that only a dropped document's signals are read (a build's drop log), so a
    filter may skip signals that describe a kept document and decide nothing (`kept_signals`)."""
    for f in filters:
        if isinstance(f, DescribesKept):
            f.kept_signals = False


@dataclasses.dataclass(frozen=True, slots=True)
class ChainResult:
    doc: Document | None
    """The kept document (text and meta as the filters left them), or None when dropped."""
    verdicts: tuple[tuple[str, Verdict], ...]
    """(filter name, verdict) of every filter that ran, in order."""

    @property
    def kept(self) -> bool:
        return self.doc is not None

    @property
    def reason(self) -> str:
        return "" if self.doc is not None else self.verdicts[-1][1].reason

    def signals(self) -> dict[str, float]:
        merged: dict[str, float] = {}
        for name, verdict in self.verdicts:
            for key, value in verdict.signals.items():
                merged[f"{name}.{key}"] = value
        return merged


Clock = Callable[[str, float, int], None]
"""Hears (filter name, CPU seconds, document bytes) after each filter runs."""


def run_chain(doc: Document, filters: Sequence[Filter], clock: Clock | None = None,
              cpu: Callable[[], float] | None = time.thread_time) -> ChainResult:
    """`clock(name, cpu_seconds, document_bytes)`, if given, hears each filter's CPU time: `cpu`'s,
    by default the calling thread's, so a worker's other threads' work meanwhile is not put on the
    filter (`lemur_corpus.pipelines.profile`). With `cpu` None no clock is read and it hears 0 s (a
    profile that times only some documents still counts them and their bytes)."""
    verdicts: list[tuple[str, Verdict]] = []
    for f in filters:
        started = cpu() if clock is not None and cpu is not None else 0.0
        try:
            verdict = f(doc)
        except Exception as exc:  # a filter bug must not kill a build: count it, visibly
            if caused_by_interrupt(exc):  # not the message: it may quote a document that names it
                # a Ctrl-C that a native library wrapped: numba turns a KeyboardInterrupt raised in
                # the Python it calls back (to box a result) into a SystemError, not a filter bug
                raise
            verdict = Verdict.dropped(f"{f.name}.error", meta={"error": f"{type(exc).__name__}: {exc}"})
        if clock is not None:
            clock(f.name, cpu() - started if cpu is not None else 0.0, doc.nbytes)
        if verdict.reason and not verdict.reason.startswith(f"{f.name}."):
            verdict = dataclasses.replace(verdict, reason=f"{f.name}.{verdict.reason}")
        verdicts.append((f.name, verdict))
        if not verdict.keep:
            return ChainResult(None, tuple(verdicts))
        if verdict.text is not None or verdict.meta:
            doc = doc.replace(
                text=verdict.text if verdict.text is not None else doc.text,
                meta={**doc.meta, **verdict.meta} if verdict.meta else doc.meta,
            )
    return ChainResult(doc, tuple(verdicts))
