"""Code filters: language buckets, licenses, StarCoder heuristics, generated and data files, syntax.

The filters, by name, in their default run order (cheap before expensive; the first drop ends the
chain, so each filter only sees what the cheaper ones kept). These names are what
`filters.code.filters` in the build config and `corpus filter --kind code --filters a,b` accept;
drop reasons read `<name>.<rule>`:

Each filter: its name, the rules it drops by, then the evidence it goes on:

- `decontam`: `<benchmark>` (`decontam.humaneval`, `decontam.mbpp`, ...); the file holds an item of a
  benchmark Lemur is judged on: n-grams of its words against the shipped index
  (`lemur_corpus.filters.decontam`, shared with the text chain; first: see that package for why).
- `language`: `language_not_allowed`; language unknown, mapped to no bucket (`unbucketed`), or bucket
  not allowed.
- `license`: `license_not_allowed`, `no_license`; repository licenses outside The Stack's permissive
  list.
- `heuristics`: `too_large`, `too_small`, `max_line_length`, `avg_line_length`, `alphanum_fraction`,
  `encoded_data`; Codex/The Stack/StarCoder line and character rules; StarCoder2 encoded-data runs.
- `generated`: `lock_file`, `generated_path`, `vendored_path`, `tool_marker`, `header_marker`, `minified`,
  `bundle`; generator banners, lock files, minified and bundled code.
- `data_like`: `xml_declaration`, `data_format_size`, `literal_rows`; XML documents, JSON/YAML/CSV
  outside StarCoder's bounds, data dumps.
- `syntax`: `syntax_errors`, `parse_timeout`; tree-sitter: share of bytes under ERROR/MISSING nodes
  above the language's threshold.
- `pii`: `too_many_hits` (only with `pii.max_hits` set); redacts e-mail addresses, public IP addresses
  and secrets in the kept files (`lemur_corpus.filters.pii`, shared with the text chain).

Every verdict carries its signals (numbers) so decisions can be inspected and compared.
"""

from __future__ import annotations

from collections.abc import Callable

from lemur_corpus.filters.base import Filter, build_chain, setup_filters
from lemur_corpus.filters.code.config import CODE_FILTER_NAMES, CodeFiltersConfig
from lemur_corpus.filters.code.data_like import DataLikeFilter
from lemur_corpus.filters.code.generated import GeneratedFilter
from lemur_corpus.filters.code.heuristics import HeuristicsFilter
from lemur_corpus.filters.code.language import LanguageFilter
from lemur_corpus.filters.code.license import LicenseFilter
from lemur_corpus.filters.code.syntax import SyntaxFilter
from lemur_corpus.filters.decontam import DecontamFilter
from lemur_corpus.filters.pii import PiiFilter

_FACTORIES: dict[str, Callable[[CodeFiltersConfig], Filter]] = {
    "decontam": lambda c: DecontamFilter(c.decontam),
    "language": lambda c: LanguageFilter(c.language),
    "license": lambda c: LicenseFilter(c.license),
    "heuristics": lambda c: HeuristicsFilter(c.heuristics),
    "generated": lambda c: GeneratedFilter(c.generated),
    "data_like": lambda c: DataLikeFilter(c.data_like),
    "syntax": lambda c: SyntaxFilter(c.syntax),
    "pii": lambda c: PiiFilter(c.pii),
}
assert tuple(_FACTORIES) == CODE_FILTER_NAMES


def build_code_filters(config: CodeFiltersConfig, only: list[str] | None = None) -> list[Filter]:
    """The code filters in run order (cheap before expensive); `only` selects and orders by name.

    Without `only`, the configured `filters` list decides (all of them by default). Grammar modules are
    imported here, so a misconfigured grammar is a ConfigError before any data is read.
    """
    return build_chain("code", list(only) if only is not None else list(config.filters), _FACTORIES, config)


def check_code_filters(config: CodeFiltersConfig, only: list[str] | None = None) -> None:
    """Build the filters and load their grammars once on the driver, so that a grammar that does not
    load is reported at start-up as a ConfigError rather than by the first worker."""
    setup_filters(build_code_filters(config, only))


__all__ = ["CODE_FILTER_NAMES", "CodeFiltersConfig", "build_code_filters", "check_code_filters"]
