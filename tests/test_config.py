"""The config: Table 8 encoded exactly, strict validation with readable messages, the embedded default."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lemur_corpus.config import BuildConfig, load_config, parse_config
from lemur_corpus.defaults import embedded_default_config
from lemur_corpus.errors import ConfigError
from lemur_corpus.lemur import LEMUR_TABLE8

REPO = Path(__file__).resolve().parents[1]


def _minimal() -> dict:
    return {
        "inputs": [{"name": "web", "format": "jsonl", "kind": "text", "source": "web", "paths": ["x.jsonl"]}],
        "mixture": {"sources": {"web": {"kind": "text", "weight": 100}}},
    }


def test_default_yaml_is_the_embedded_default() -> None:
    assert load_config(REPO / "configs" / "default.yaml") == embedded_default_config()


@pytest.mark.parametrize("config_file", ["default.yaml", "lemur.yaml"])
def test_configs_encode_lemur_table8_exactly(config_file: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEMUR_DATA", "/data")
    config = load_config(REPO / "configs" / config_file)
    sources = config.mixture.sources
    assert list(sources) == [row.name for row in LEMUR_TABLE8]
    for row in LEMUR_TABLE8:
        assert sources[row.name].kind == row.kind
        assert sources[row.name].weight == row.weight_percent
        assert sources[row.name].reference_epochs == row.reference_epochs
    code = sum(s.weight for s in sources.values() if s.kind == "code")
    text = sum(s.weight for s in sources.values() if s.kind == "text")
    assert round(code, 2) == 90.80 and round(text, 2) == 9.10  # the paper's 90.9 / 9.1, as printed per row
    assert 9.95 < code / text < 10.05


def test_lemur_config_targets_90b_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEMUR_DATA", "/data")
    config = load_config(REPO / "configs" / "lemur.yaml")
    assert config.mixture.total_tokens == 90_000_000_000
    assert config.inputs[0].paths[0] == "/data/the-stack-dedup/data/python/*.parquet"


def test_unset_environment_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEMUR_DATA", raising=False)
    with pytest.raises(ConfigError, match="LEMUR_DATA is not set"):
        load_config(REPO / "configs" / "lemur.yaml")


def test_typo_names_the_key_and_suggests() -> None:
    data = _minimal()
    data["inputs"][0]["formt"] = data["inputs"][0].pop("format")
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    message = str(err.value)
    assert "inputs[0].formt: unknown key (did you mean 'format'?)" in message
    assert "inputs[0].format: required key is missing" in message


def test_wrong_type_names_the_key_and_the_expected_type() -> None:
    data = _minimal()
    data["mixture"]["sources"]["web"]["weight"] = "lots"
    with pytest.raises(ConfigError, match=r"mixture\.sources\.web\.weight: expected a number, got 'lots'"):
        parse_config(data)
    data = _minimal()
    data["shards"] = {"target_tokens": "big"}
    with pytest.raises(ConfigError, match=r"shards\.target_tokens: expected an integer, got 'big'"):
        parse_config(data)


def test_literal_error_lists_the_choices() -> None:
    data = _minimal()
    data["inputs"][0]["format"] = "csv"
    with pytest.raises(ConfigError, match=r"inputs\[0\]\.format: expected one of 'stack', 'refinedweb'"):
        parse_config(data)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"web": 90}, "weights add up to 90%, not 100%"),
        ({"web": 100, "code": -1}, "greater than or equal to 0"),
    ],
)
def test_weights_must_add_up_and_be_non_negative(weights: dict, message: str) -> None:
    data = _minimal()
    data["mixture"]["sources"] = {n: {"kind": "text" if n == "web" else "code", "weight": w}
                                  for n, w in weights.items()}
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


def test_input_source_must_exist_and_match_kind() -> None:
    data = _minimal()
    data["inputs"][0]["source"] = "wiki"
    with pytest.raises(ConfigError, match="source 'wiki' is not a mixture source"):
        parse_config(data)
    data = _minimal()
    data["mixture"]["sources"] = {"web": {"kind": "code", "weight": 100}}
    with pytest.raises(ConfigError, match="is a code source, but the input is text"):
        parse_config(data)


def test_yaml_errors_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("inputs: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(listing)


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(_minimal()))
    assert load_config(path).inputs[0].paths == [str(tmp_path / "x.jsonl")]


def test_config_hash_is_stable_and_sensitive() -> None:
    a = BuildConfig.model_validate(_minimal())
    b = BuildConfig.model_validate(_minimal())
    assert a.config_hash() == b.config_hash()
    changed = _minimal()
    changed["seed"] = 7
    assert BuildConfig.model_validate(changed).config_hash() != a.config_hash()
