"""The `decontam` filter: drops a document that contains a benchmark item (reason `decontam.<benchmark>`).

The index loads once per worker (`setup`; one copy per process however many chains use it) from the
package's shipped file or a configured one, plus the config's own benchmark files indexed on the spot.
An index built with other settings than the config's is refused with a message saying how to rebuild
it. Signals: the document's n-grams looked up and the items found; for a drop also the matched items
(`<item id>: containment`, the best first) and the best part's containment and n-grams matched. A
drop's meta holds every match, which the contamination report (report.py) counts per benchmark, item
and source.
"""

from __future__ import annotations

import json
import threading
from importlib import resources
from typing import Any

from lemur_corpus.document import Document
from lemur_corpus.errors import ConfigError
from lemur_corpus.filters.base import Verdict
from lemur_corpus.filters.decontam.config import BUILTIN, DecontamConfig
from lemur_corpus.filters.decontam.index import DecontamIndex, IndexSettings, index_benchmarks, parse_index
from lemur_corpus.filters.decontam.match import Contamination, Matcher

NAME = "decontam"
SHIPPED_INDEX = "lemur-benchmarks.dcx"
"""The index of Lemur's benchmarks inside the package (filters/decontam/data/, `make decontam-index`)."""
CONTAMINATION_META = "contamination"
"""The verdict's meta key holding every match (a list of `ItemMatch.to_dict()`)."""
SIGNAL_ITEMS = 5
"""Items named in a drop's signals (the drop log keeps 500 characters of them); the meta has all."""

_MATCHERS: dict[str, Matcher] = {}
_LOCK = threading.Lock()


def shipped_index_path() -> str:
    return str(resources.files("lemur_corpus.filters.decontam").joinpath("data", SHIPPED_INDEX))


def index_settings(config: DecontamConfig) -> IndexSettings:
    return IndexSettings(config.ngram, config.sketch, config.min_ngrams, config.max_families)


def index_location(config: DecontamConfig) -> str | None:
    """The file the config's index is read from (None: no prebuilt index)."""
    if config.index is None:
        return None
    return shipped_index_path() if config.index == BUILTIN else config.index


def load_index(config: DecontamConfig) -> DecontamIndex:
    """The index the config asks for: the prebuilt one (checked against the config's settings) and
    the config's own benchmark files indexed with the same settings."""
    from lemur_corpus.io import read_raw_bytes

    settings = index_settings(config)
    index: DecontamIndex | None = None
    location = index_location(config)
    if location is not None:
        origin = f"decontam.index {config.index}" if config.index != BUILTIN else f"the shipped index {location}"
        try:
            data = read_raw_bytes(location)
        except Exception as exc:  # InputFileError and FileSystems errors alike: one message
            raise ConfigError(f"{origin}: cannot be read ({exc})") from None
        index = parse_index(data, origin)
        if index.settings != settings:
            theirs = index.settings
            raise ConfigError(
                f"{origin} was built with other n-gram settings than the config asks for "
                f"({'; '.join(theirs.differences(settings))}: index vs config). Use the index's settings "
                f"(decontam.ngram: {theirs.ngram}, sketch: {theirs.sketch}, min_ngrams: {theirs.min_ngrams}, "
                f"max_families: {theirs.max_families}) or build an index with yours: corpus decontam index "
                f"--benchmarks DIR... --ngram {settings.ngram} --sketch {settings.sketch} --min-ngrams "
                f"{settings.min_ngrams} --max-families {settings.max_families} --out FILE")
    if config.benchmarks:
        own = index_benchmarks(list(config.benchmarks), settings)
        index = own if index is None else index.merged(own)
    if index is None:  # the config validator forbids it; a hand-built config may not have run it
        raise ConfigError("decontam: no index and no benchmarks to match against")
    return index


def matcher_for(config: DecontamConfig) -> Matcher:
    """One matcher per process and config: the code and text chains (and every DoFn instance of a
    worker) share the index's memory."""
    key = json.dumps(config.model_dump(mode="json"), sort_keys=True)
    with _LOCK:
        matcher = _MATCHERS.get(key)
        if matcher is None:
            matcher = Matcher(load_index(config), config.min_containment, config.min_ngrams,
                              list(config.ignore_benchmarks))
            _MATCHERS[key] = matcher
        return matcher


def index_identity(config: DecontamConfig) -> dict[str, Any]:
    """What the manifest records of the index a chain used: where it came from, its sha256, settings,
    sources (with their sha256) and items per benchmark."""
    index = matcher_for(config).index
    location = index_location(config)
    header = index.header
    benchmarks: dict[str, Any] = {}
    for name in index.benchmarks:
        benchmarks[name] = dict(header.get("benchmarks", {}).get(name) or {})
    return {
        "index": None if location is None else (f"{BUILTIN}:{SHIPPED_INDEX}" if config.index == BUILTIN else location),
        "index_sha256": index.sha256 or None,
        "settings": index.settings.to_dict(),
        "min_containment": config.min_containment,
        "ignore_benchmarks": sorted(config.ignore_benchmarks),
        "sources": list(header.get("sources", [])),
        "benchmarks": benchmarks,
    }


class DecontamFilter:
    """A document in, keep or `decontam.<benchmark>` out (the benchmark of the best-matched item)."""

    name = NAME

    def __init__(self, config: DecontamConfig) -> None:
        self.config = config
        self.matcher: Matcher | None = None

    def setup(self) -> None:
        self.matcher = matcher_for(self.config)

    def probe(self, doc: Document) -> Contamination:
        """The matches of a document, whether or not the chain reached this filter."""
        if self.matcher is None:
            self.setup()
        assert self.matcher is not None
        return self.matcher.match(doc.text)

    def __call__(self, doc: Document) -> Verdict:
        found = self.probe(doc)
        if not found.contaminated:
            return Verdict.kept({"ngrams": float(found.ngrams), "items": 0.0})
        best = found.items[0]
        signals: dict[str, float] = {"ngrams": float(found.ngrams), "items": float(len(found.items)),
                                     "containment": round(best.containment, 4), "matched_ngrams": float(best.matched)}
        for match in found.items[:SIGNAL_ITEMS]:
            signals[match.item] = round(match.containment, 4)
        return Verdict.dropped(f"{NAME}.{best.benchmark}", signals,
                               meta={CONTAMINATION_META: [m.to_dict() for m in found.items]})
