"""The `pii` filter: each kind of value found and replaced, each look-alike left alone, replacements
that keep code valid and are deterministic, bad input bounded, and the counts that reach the manifest.

Every secret below is a random string in a real format, made for this file (never a real credential).
"""

from __future__ import annotations

import ast
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lemur_corpus.document import Document
from lemur_corpus.filters.base import run_chain
from lemur_corpus.filters.code import CODE_FILTER_NAMES, CodeFiltersConfig, build_code_filters
from lemur_corpus.filters.pii import PII_TYPES, PiiConfig, PiiFilter
from lemur_corpus.filters.pii import scan as pii_scan
from lemur_corpus.filters.pii.scan import BRANCHES, CANDIDATES, ScanContext, branch, redact
from lemur_corpus.filters.pii.secrets import name_kind
from lemur_corpus.filters.text import TEXT_FILTER_NAMES, TextFiltersConfig, build_text_filters

CONFIG = PiiConfig()
PII = PiiFilter(CONFIG)


def code(text: str, lang: str = "Python", path: str = "") -> Document:
    return Document(id="t/x", source="python", kind="code", text=text, lang=lang, meta={"path": path} if path else {})


def prose(text: str) -> Document:
    return Document(id="w/x", source="refinedweb", kind="text", text=text, lang="en")


def redacted(doc: Document) -> str:
    verdict = PII(doc)
    assert verdict.keep
    return verdict.text if verdict.text is not None else doc.text


def found(doc: Document) -> dict[str, float]:
    return {k: v for k, v in PII(doc).signals.items() if k != "hits"}


# ---------------------------------------------------------------------------------------------
# What is found, by type

SECRETS = [
    ("aws_access_key_id", 'key_id = "AKIAZ3MLQ7TRP4XKWD2N"', "AKIAZ3MLQ7TRP4XKWD2N"),
    ("aws_secret_access_key", 'aws_secret_access_key = "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"',
     "k8Jd92LmQp0aZx7Vb3Nc5Rt1Yu4Wq6Es9Df2Gh8J"),
    ("github_token", "token = 'ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5'", "ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5"),
    ("github_token",
     'GH = "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"',
     "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"),
    ("gitlab_token", 'CI = "glpat-x7Rk2mQ9vT4bN8wLpZ3c"', "glpat-x7Rk2mQ9vT4bN8wLpZ3c"),
    ("slack_token", 'SLACK = "xoxb-2841059367-3918472650193-aK7mQ2vR9tX4bN8wLpZ3cYd6"',
     "xoxb-2841059367-3918472650193-aK7mQ2vR9tX4bN8wLpZ3cYd6"),
    ("slack_token", 'HOOK = "https://hooks.slack.com/services/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"',
     "T04KQ8Z2M/B05RJ3N7P/x7Rk2mQ9vT4bN8wLpZ3cYd6F"),
    ("stripe_key", 'stripe.api_key = "sk_live_4eC39HqLyjWDarjtT1zdp7dcK2"', "sk_live_4eC39HqLyjWDarjtT1zdp7dcK2"),
    ("google_api_key", 'MAPS = "AIzaSyD8x7Rk2mQ9vT4bN8wLpZ3cYd6F1gH5jK0"', "AIzaSyD8x7Rk2mQ9vT4bN8wLpZ3cYd6F1gH5jK0"),
    ("google_oauth", 'CLIENT = "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"', "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"),
    ("npm_token", "//registry.npmjs.org/:_authToken=npm_x7Rk2mQ9vT4bN8wLpZ3cYd6F1gH5jK0aBcDe",
     "npm_x7Rk2mQ9vT4bN8wLpZ3cYd6F1gH5jK0aBcDe"),
    ("huggingface_token", 'HF = "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"', "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"),
    ("sendgrid_key", 'SG = "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"',
     "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"),
    ("password_in_url", 'DB = "postgresql://app:Zq8#vL2mRx4t@db.acme-corp.io:5432/prod"', "Zq8#vL2mRx4t"),
    ("password", 'DATABASES = {"default": {"PASSWORD": "Zq8vL2mRx4t!"}}', "Zq8vL2mRx4t!"),
    ("password", 'conn = "Server=db1;Database=shop;User Id=sa;Password=Zq8vL2mRx4t;"', "Zq8vL2mRx4t"),
    ("secret", "SECRET_KEY = 'x7Rk2mQ9vT4bN8wLpZ3cYd6F1gH5jK0a'", "x7Rk2mQ9vT4bN8wLpZ3cYd6F1gH5jK0a"),
    ("secret", "JWT_SECRET: str = 'a8f5f167f44f4964e6c998dee827110c'", "a8f5f167f44f4964e6c998dee827110c"),
]


@pytest.mark.parametrize("kind,line,value", SECRETS, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(SECRETS)])
def test_each_secret_format_is_found_and_only_its_value_replaced(kind: str, line: str, value: str) -> None:
    out = redacted(code(line + "\n"))
    assert value not in out
    assert found(code(line + "\n")) == {kind: 1}
    assert out.replace("REDACTED_PASSWORD" if kind == "password_in_url" else f"REDACTED_{kind.upper()}", value) \
        == line + "\n"  # everything but the value is byte-identical


def test_private_key_armour_stays_and_its_body_goes() -> None:
    body = "\n".join(["MIIEpAIBAAKCAQEA7bq98gTyU2kS6m3CF1XG3kE4Yx9hVc5eAq0Wm2n8pLr7sD1fJ6Hk"] * 4)
    pem = f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----\n"
    assert redacted(code(pem, "Text")) == ("-----BEGIN RSA PRIVATE KEY-----\nREDACTED_PRIVATE_KEY\n"
                                           "-----END RSA PRIVATE KEY-----\n")
    escaped = 'KEY = "-----BEGIN PRIVATE KEY-----\\n' + body.replace("\n", "\\n") + '\\n-----END PRIVATE KEY-----\\n"\n'
    out = redacted(code(escaped))
    assert out == 'KEY = "-----BEGIN PRIVATE KEY-----\\nREDACTED_PRIVATE_KEY\\n-----END PRIVATE KEY-----\\n"\n'
    assert ast.parse(out)  # still one valid string literal
    truncated = f"-----BEGIN OPENSSH PRIVATE KEY-----\n{body}\n"  # no END line: the base64 run still goes
    assert "MIIEpAIBAAKCAQEA" not in redacted(code(truncated, "Text"))
    checker = 'if line.startswith("-----BEGIN RSA PRIVATE KEY-----"):\n    kind = "rsa"\n'
    assert redacted(code(checker)) == checker  # a header without a body is no key


def test_jwt_is_found_but_the_jwt_io_example_is_not() -> None:
    token = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI4MjkxMDQ3IiwibmFtZSI6IkFubmEgU21pdGgifQ."
             "x7Rk2mQ9vT4bN8wLpZ3cYd6F1gH5jK0aBcDeFgHiJk")
    assert found(code(f'AUTH = "Bearer {token}"\n')) == {"jwt": 1}
    example = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2"
               "MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")
    assert found(code(f'AUTH = "Bearer {example}"\n')) == {}


def test_emails_and_public_ips_in_code_and_prose() -> None:
    doc = code("# Author: Anna Smith <anna.smith@uni-heidelberg.de>\nSERVER = '93.184.216.34'\n"
               "V6 = '2a00:1450:4001:81b::200e'\n")
    assert redacted(doc) == "# Author: Anna Smith <user1@example.com>\nSERVER = '192.0.2.1'\nV6 = '2001:db8::1'\n"
    text = prose("Write to John.Doe@Gmail.com or ssh deploy@185.166.23.21 (my box). Mail john.doe@gmail.com.")
    assert redacted(text) == "Write to user1@example.com or ssh deploy@192.0.2.1 (my box). Mail user1@example.com."
    assert found(text) == {"email": 2, "ipv4": 1}


# ---------------------------------------------------------------------------------------------
# Look-alikes stay byte-identical

LOOKALIKES = [
    "contact = 'jane.doe@example.com'  # and ops@mail.example.org, x@example.net",
    "git clone git@github.com:org/repo.git && git remote add up ssh://git@gitlab.com/org/repo.git",
    '@app.route("/users/<int:user_id>")\n@functools.lru_cache(maxsize=None)',
    '@Override\n@SuppressWarnings("unchecked")\n * @param email the address',
    '"@babel/core": "^7.22.5", import x from "@scope/pkg@1.2.3"; npm i @types/node@20.4.2',
    '@media (max-width: 768px) { @import url("theme.css"); @font-face {} @keyframes spin {}',
    "hosts = ['10.0.0.1', '172.16.4.2', '192.168.1.254', '127.0.0.1', '169.254.169.254', '100.64.1.2']",
    "docs = ['192.0.2.10', '198.51.100.7', '203.0.113.99', '2001:db8::1', 'fe80::1%eth0', '::1', 'fd12:3456::1']",
    "netmask 255.255.255.0; mask = '255.255.240.0'; wildcard 0.0.0.255; multicast 224.0.0.251",
    '__version__ = "2.7.18.1"  # Version: 10.0.5.3, pkg==1.2.3.4, tool-3.1.4.1.tar.gz, v4.2.1.7',
    '[assembly: AssemblyVersion("17.0.0.0")]  OID 1.3.6.1.4.1.2021  Firefox 2.0.0.16',
    'commit 3f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39\n"rev": "9fceb02d0ae598e95dc970b74767f19372d61af8"',
    'sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # d41d8cd98f00b204e9800998ecf8427e',
    '"integrity": "sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg=="',
    'id = "123e4567-e89b-42d3-a456-426614174000"  # request 9f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b',
    "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    'API_KEY = os.environ["API_KEY"]\npassword = os.getenv("DB_PASSWORD")\nSECRET_KEY = ENV.fetch("SECRET_KEY")',
    'password = getpass.getpass("Password: ")\napi_key = input("Enter your API key: ")',
    'password = ""; token = None; API_KEY = "your-api-key-here"; secret = "<secret>"; pwd = "********"',
    'primary_key = "user_id"; TOKEN_TYPE = "Bearer"; cache_key = "user:sessions:active"; key: value',
    '"password": "Passwort", "login": "Iniciar sesión", "password_hint": "Your first pet"',
    "x = a@self.weight.T; this@MainActivity.run { }; img = 'icon@2x.png'; root@localhost",
]


@pytest.mark.parametrize("text", LOOKALIKES)
def test_look_alikes_are_left_alone(text: str) -> None:
    assert redacted(code(text + "\n")) == text + "\n"
    assert redacted(prose(text)) == text


def test_unquoted_values_count_in_config_files_not_in_code() -> None:
    line = "DB_PASSWORD=Zq8vL2mRx4t9\n"
    assert found(code(line, "Shell")) == {"password": 1}
    assert found(code(line, "", path="deploy/.env")) == {"password": 1}
    assert found(code("password = make_password2\n", "Python")) == {}  # an expression in Python
    assert found(code("password: Zq8vL2mRx4t9\n", "YAML")) == {"password": 1}
    assert found(code("password: *default_pass\nsecret: !Ref DbSecret\n", "YAML")) == {}


# ---------------------------------------------------------------------------------------------
# Replacements


def test_replacements_keep_python_valid_and_redacting_twice_changes_nothing() -> None:
    source = ("AUTHOR = 'Anna Smith <anna@acme-corp.io>'\nHOSTS = ['93.184.216.34', '2a00:1450:4001:81b::200e']\n"
              "KEY = \"AKIAZ3MLQ7TRP4XKWD2N\"\nDB = f'postgresql://u:Zq8vL2mRx4t@{HOSTS[0]}/db'\n"
              "SECRET_KEY = 'x7Rk2mQ9vT4bN8wLpZ3cYd6F1gH5jK0a'\n")
    ast.parse(source)
    once = redacted(code(source))
    assert ast.parse(once) and once != source
    assert redacted(code(once)) == once


def test_one_address_keeps_one_replacement_and_replacements_are_reserved() -> None:
    text = "a 93.184.216.35 b 93.184.216.34 c 93.184.216.35 d x@acme-corp.io e y@acme-corp.io f X@ACME-CORP.IO"
    assert redacted(prose(text)) == ("a 192.0.2.1 b 192.0.2.2 c 192.0.2.1 d user1@example.com e user2@example.com "
                                     "f user1@example.com")
    many = " ".join(f"93.184.{i // 250}.{i % 250 + 1}" for i in range(600))
    out = redacted(prose(many)).split()
    assert len(set(out)) == 600 and all(a.startswith(("192.0.2.", "198.51.100.", "203.0.113.")) for a in out)


def test_placeholders_are_never_detected() -> None:
    for kind in PII_TYPES:
        placeholder = pii_scan.PLACEHOLDERS.get(kind, b"REDACTED_" + kind.upper().encode()).decode()
        for line in (f'{kind} = "{placeholder}"\n', f"password = {placeholder}\n", f"API_KEY={placeholder}\n"):
            assert found(code(line, "Shell")) == {}, line


@given(st.lists(st.sampled_from(list("aZ09@.:-_=/\"' \n#$") + ["AKIA", "ghp_", "://", "password", "key", "93.1"]),
                max_size=120).map("".join))
def test_redaction_is_deterministic_and_idempotent(text: str) -> None:
    ctx = ScanContext.for_document(CONFIG, "code", "Shell")
    first, counts = redact(text, ctx)
    assert redact(text, ctx) == (first, counts)
    assert redact(first, ctx)[0] == first


def test_types_can_be_switched_off() -> None:
    only_email = PiiFilter(PiiConfig(types=["email"]))
    doc = code("# anna@acme-corp.io on 93.184.216.34\n")
    assert only_email(doc).text == "# user1@example.com on 93.184.216.34\n"
    with pytest.raises(ValueError, match="unknown PII type"):
        PiiConfig(types=["phone"])
    with pytest.raises(ValueError, match="not an IP address"):
        PiiConfig(keep_ips=["8.8.8"])


# ---------------------------------------------------------------------------------------------
# The filter in its chains


def test_verdict_keeps_the_document_with_signals_and_removed_counts() -> None:
    doc = code("a = 'anna@acme-corp.io'\nb = 'bob@acme-corp.io'\nKEY = 'AKIAZ3MLQ7TRP4XKWD2N'\n")
    verdict = PII(doc)
    assert verdict.keep and verdict.reason == ""
    assert verdict.signals == {"hits": 3, "aws_access_key_id": 1, "email": 2}
    assert verdict.removed == {"aws_access_key_id": 1, "email": 2}
    clean = PII(code("x = 1\n"))
    assert clean.keep and clean.text is None and clean.signals == {"hits": 0} and not clean.removed


def test_max_hits_drops_dumps_of_addresses() -> None:
    dump = "\n".join(f"user{i}@acme-corp.io" for i in range(20))
    verdict = run_chain(prose(dump), [PiiFilter(PiiConfig(max_hits=10))])
    assert not verdict.kept and verdict.reason == "pii.too_many_hits"
    assert run_chain(prose(dump), [PII]).kept


def test_a_failing_redaction_is_a_counted_pii_error_drop(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(text: bytes, ctx: ScanContext) -> list:
        raise RuntimeError("scanner bug")

    monkeypatch.setattr(pii_scan, "scan", broken)
    result = run_chain(code("x = 'anna@acme-corp.io'\n"), [PII])
    assert not result.kept and result.reason == "pii.error"


def test_pii_ends_both_default_chains_and_runs_alone() -> None:
    assert CODE_FILTER_NAMES[-1] == "pii" and TEXT_FILTER_NAMES[-1] == "pii"
    assert [f.name for f in build_code_filters(CodeFiltersConfig(), only=["pii"])] == ["pii"]
    assert [f.name for f in build_text_filters(TextFiltersConfig(), only=["pii"])] == ["pii"]
    config = CodeFiltersConfig.model_validate({"pii": {"max_hits": 5, "types": ["email", "secret"]}})
    assert config.pii.max_hits == 5


def test_embedded_default_and_lemur_config_redact_every_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    from lemur_corpus.config import load_config
    from lemur_corpus.defaults import embedded_default_config

    default = embedded_default_config()
    assert "pii" in default.filters.text.filters and "pii" in default.filters.code.filters
    monkeypatch.setenv("LEMUR_DATA", "/data")
    lemur = load_config(Path(__file__).resolve().parents[1] / "configs" / "lemur.yaml")
    assert "pii" in lemur.filters.text.filters and "pii" in lemur.filters.code.filters
    for inp in lemur.inputs:  # the curated inputs skip the web rules, not the redaction
        assert inp.filters is None or "pii" in (inp.filters.text or []) + (inp.filters.code or []), inp.name


# ---------------------------------------------------------------------------------------------
# Bad input: bounded, linear work


def test_branch_names_the_alternative_that_matched() -> None:
    capturing = pii_scan.re2.compile(b"|".join(b"(" + p + b")" for _, p in pii_scan._BRANCHES), pii_scan._options())
    text = "\n".join(line for _, line, _ in SECRETS) + "\n" + "\n".join(LOOKALIKES) + (
        "\n-----BEGIN EC PRIVATE KEY-----\nx\n-----END EC PRIVATE KEY-----\n key: 1.2.3.4 2a00::1 eyJa.eyJb.c")
    data = text.encode()
    seen = set()
    for match in capturing.finditer(data):
        exact = BRANCHES[match.lastindex - 1]
        assert branch(data[match.start():match.end()]) == exact, data[match.start():match.end()]
        seen.add(exact)
    assert seen == set(BRANCHES)
    assert [m.span() for m in CANDIDATES.finditer(data)] == [m.span() for m in capturing.finditer(data)]


@pytest.mark.parametrize("text", [
    "@" * 100_000, "a@" * 50_000, "a.b@c.com " * 5_000, "1.2.3.4." * 10_000, ":" * 100_000, "2a00:" * 20_000,
    "password=" * 2_000, "key: " * 5_000, "\x00\xff" * 50_000, "-----BEGIN PRIVATE KEY-----" * 2_000,
    "A" * 200_000, "x://" + "u:p@" * 10_000, "ghp_" + "a1" * 50_000, "key" + "1.2.3.4." * 10_000,
])
def test_enormous_and_binary_looking_input_is_handled(text: str) -> None:
    """Kept, redacted or not, without error; that the work is linear in the size is checked by counting
    executed lines (tests/test_adversarial.py, `pii`)."""
    verdict = PII(prose(text))
    assert verdict.keep
    assert json.dumps(verdict.signals)


def test_name_kind_reads_the_last_word_of_a_name() -> None:
    assert name_kind("AWS_SECRET_ACCESS_KEY") == "aws_secret"
    assert name_kind("apiKey") == name_kind("client-secret") == name_kind("SLACKTOKEN") == "secret"
    assert name_kind("db.password") == name_kind("ADMINPASSWORD") == name_kind("MYSQL_ROOT_PASSWORD") == "password"
    assert name_kind("SECRET_KEY_BASE") == "secret"
    for name in ("key", "token", "primary_key", "next_page_token", "password_hint", "monkey", "public_key",
                 "PASSWORD_MIN_LENGTH", "keyboard"):
        assert name_kind(name) is None, name

