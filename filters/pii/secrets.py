"""Secrets: the formats of real credentials, and the judgement of a value assigned to a secret's name.

Formats are those of detect-secrets' plugins (AWS, GitHub, GitLab, Slack, Stripe, npm, PyPI, OpenAI,
SendGrid, JWT, private keys) and of the vendors' documentation (Google's `AIza` API keys and
`GOCSPX-` OAuth client secrets, Hugging Face's `hf_` tokens). Each `check_*` takes the bytes a scan
pattern matched (`lemur_corpus.filters.pii.scan`) and returns the type, or None for a look-alike:
documented examples (`AKIAIOSFODNN7EXAMPLE`), placeholders (`ghp_xxxx...`), identifiers that share a
prefix (`hf_hub_download`, `npm_config_cache`).

A value assigned to a name (`API_KEY = "..."`, `password: ...`) is judged by the name's last word and
the value's shape: passwords need a digit or symbol among letters, keys and tokens need length and
entropy; templates, environment reads, prompts, paths, URLs, UUIDs and digests never count.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections import Counter

import re2

PLACEHOLDER_MARKS: tuple[bytes, ...] = (
    b"example", b"xxxx", b"****", b"....", b"your", b"redacted", b"placeholder", b"changeme", b"change_me",
    b"dummy", b"sample", b"fake", b"insert", b"replace", b"0000000000", b"1234567890", b"abcdefgh", b"<", b">",
    b"${", b"{{", b"}}", b"$(", b"#{", b"{}", b"...", b"\\",
)
"""Found in a value (lower-cased), they make it a placeholder, a template or an escaped blob."""
PLACEHOLDER_WORDS: frozenset[bytes] = frozenset({
    b"password", b"passwd", b"pass", b"pwd", b"secret", b"token", b"key", b"apikey", b"api_key", b"null", b"none",
    b"nil", b"undefined", b"true", b"false", b"empty", b"default", b"test", b"testing", b"foo", b"bar", b"foobar",
    b"admin", b"root", b"user", b"username", b"todo", b"tbd", b"fixme", b"required", b"optional", b"string",
    b"str", b"text", b"hidden", b"secret_key", b"mysecret", b"mypassword", b"changeit", b"letmein", b"guest",
})
SEPARATORS = frozenset(b"._-/:")
"""Characters that join words in names and keys (`auth.password`, `user:sessions`)."""
PASSWORD_WORDS = frozenset({"password", "passwd", "pwd", "pass", "passphrase", "passcode", "pw"})
SECRET_WORDS = frozenset({
    "key", "token", "secret", "credential", "credentials", "apikey", "authkey", "accesskey", "secretkey",
    "privatekey", "masterkey", "signingkey", "encryptionkey", "accesstoken", "authtoken", "apitoken",
    "secretaccesskey", "accesskeysecret", "apisecretkey", "clientkey",
    "bearertoken", "refreshtoken", "clientsecret", "appsecret", "apisecret", "webhooksecret", "consumersecret",
    "consumerkey",
})
COMPOUND_PASSWORD_ENDINGS = ("password", "passwd", "passphrase")
COMPOUND_SECRET_ENDINGS = ("token", "secret", "apikey", "secretkey", "accesskey", "privatekey", "authkey",
                           "signingkey", "masterkey", "encryptionkey")
"""Endings of names written as one word (`ADMINPASSWORD`, `SLACKTOKEN`, `STRIPEAPIKEY`): no English word
ends so; plain `key` endings do (`monkey`, `hockey`)."""
TRAILING_WORDS = frozenset({"base", "value", "str", "string", "b64", "base64", "hex", "raw", "bytes", "plain",
                            "plaintext", "encoded"})
"""Words that may follow the secret word without changing what the name holds (`SECRET_KEY_BASE`)."""
NOT_SECRET_QUALIFIERS = frozenset({
    "primary", "foreign", "sort", "partition", "cache", "lookup", "dict", "map", "index", "row", "column", "col",
    "field", "group", "unique", "public", "pub", "publishable", "i18n", "translation", "message", "msg",
    "storage", "state", "redis", "registry", "hot", "short", "shortcut", "menu", "config", "setting", "settings",
    "env", "prop", "property", "attr", "attribute", "list", "item", "node", "parent", "child", "next", "prev",
    "previous", "query", "object", "bucket", "idempotency", "version", "route", "label", "name", "sequence",
    "composite", "natural", "surrogate", "hash", "shard", "sharding", "range", "entity", "model", "table", "json",
    "dom", "react", "element", "component", "widget", "form", "input", "event", "keyboard", "locale", "lang",
    "type", "data", "meta", "metadata", "tag", "file", "path", "dir", "page", "continuation", "cursor", "sync",
    "cancellation", "cancel", "start", "end", "eof", "lexer", "parser", "lex", "order", "icon", "image",
    "css", "style", "site", "verification", "min", "max", "length",
})
"""Words before `key`/`token` that make the name hold no credential (`primary_key`, `next_page_token`)."""


# Single-character classes, searched in C (values can be 1 KB and a document can hold thousands).
_LETTER = re.compile(rb"[A-Za-z\x80-\xff]")
_DIGIT = re.compile(rb"[0-9]")
_SYMBOL = re.compile(rb"[^A-Za-z0-9._\-/:\x80-\xff]")
_NOT_WORD_OR_SEPARATOR = re.compile(rb"[^A-Za-z._\-/:\x80-\xff]")
_CASE_CHANGE = re.compile(rb"[a-z][A-Z]")
_CONTROL_OR_SPACE = re.compile(rb"[\x00-\x20\x7f]")
_PLACEHOLDER_MARK = re2.compile(b"|".join(re.escape(mark) for mark in PLACEHOLDER_MARKS))
"""One RE2 pass for all the marks (Python's `re` tries each alternative at every position)."""


def entropy(value: bytes) -> float:
    """Shannon entropy in bits per character."""
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values()) if n else 0.0


def name_words(name: str) -> list[str]:
    """`AWS_SECRET_ACCESS_KEY` -> [aws, secret, access, key]; `apiKey` -> [api, key]; `db.password`."""
    words: list[str] = []
    current = ""
    for i, ch in enumerate(name):
        if not ch.isalnum():
            if current:
                words.append(current)
            current = ""
            continue
        if current and ch.isupper() and (name[i - 1].islower() or name[i - 1].isdigit()):
            words.append(current)
            current = ""
        current += ch
    if current:
        words.append(current)
    return [w.lower() for w in words]


def name_kind(name: str) -> str | None:
    """`password`, `secret` or `aws_secret` for a name that holds a credential, else None."""
    words = name_words(name)
    if len(words) >= 2 and words[-1] in TRAILING_WORDS:
        words = words[:-1]
    if not words:
        return None
    last = words[-1]
    if last in PASSWORD_WORDS or last.endswith(COMPOUND_PASSWORD_ENDINGS):
        return "password"  # ADMINPASSWORD, dbpasswd
    if last not in SECRET_WORDS and not last.endswith(COMPOUND_SECRET_ENDINGS):
        return None
    if last in ("key", "token") and len(words) == 1:
        return None  # a bare `key`/`token` is a dict key, a React key, a lexer token
    if len(words) >= 2 and words[-2] in NOT_SECRET_QUALIFIERS:
        return None
    return "aws_secret" if "aws" in words or "amazon" in words else "secret"


def is_placeholder(value: bytes) -> bool:
    lowered = value.lower()
    if lowered in PLACEHOLDER_WORDS or len(set(value)) <= 2 or is_format_template(value):
        return True
    return bool(_PLACEHOLDER_MARK.search(lowered))


def is_format_template(value: bytes) -> bool:
    """printf-style fields: `%s` or `%d` opening the value or after a non-alphanumeric, `%(name)s`."""
    at = value.find(b"%")
    while at != -1:
        following = value[at + 1:at + 2]
        if following in (b"s", b"d") and (at == 0 or not value[at - 1:at].isalnum()):
            return True
        if following == b"(":
            close = value.find(b")", at)
            name = value[at + 2:close].replace(b"_", b"")
            if close > at + 2 and name.isalnum() and value[close + 1:close + 2] in (b"s", b"d", b"r", b"i", b"f"):
                return True
        at = value.find(b"%", at + 1)
    return False


def is_wordy(value: bytes) -> bool:
    """Words joined by separators (`auth.password`, `user:sessions:active`, `REDACTED_SECRET`,
    `getUserName`): letters only, and within a word case changes as in identifiers, not at random."""
    if _NOT_WORD_OR_SEPARATOR.search(value):
        return False
    return _case_changes(value) <= 2 * (1 + len(value) - len(value.translate(None, bytes(SEPARATORS))))


def is_uuid(value: bytes) -> bool:
    parts = value.split(b"-")
    return [len(p) for p in parts] == [8, 4, 4, 4, 12] and all(_is_hex(p) for p in parts)


def is_digest(value: bytes) -> bool:
    """`sha256:…`, `sha512-…` (subresource integrity), `md5=…`: a checksum that names its algorithm."""
    head = value[:8].lower()
    return any(head.startswith(a) and len(value) > len(a) + 1 and value[len(a)] in b":-="
               for a in (b"sha1", b"sha256", b"sha384", b"sha512", b"md5", b"blake2b"))


def _is_hex(value: bytes) -> bool:
    return bool(value) and all(48 <= c <= 57 or 97 <= c <= 102 or 65 <= c <= 70 for c in value)


def _classes(value: bytes) -> tuple[bool, bool, bool]:
    """(has a letter, has a digit, has a symbol other than a separator); bytes of non-ASCII letters
    count as letters (`Contraseña`)."""
    return bool(_LETTER.search(value)), bool(_DIGIT.search(value)), bool(_SYMBOL.search(value))


def _case_changes(value: bytes) -> int:
    return len(_CASE_CHANGE.findall(value))


def looks_random(value: bytes, min_length: int, min_entropy: float) -> bool:
    """A key or token: long, high-entropy, and not words (letters mixed with digits, or case that
    changes like no identifier's)."""
    if len(value) < min_length or is_wordy(value) or is_uuid(value) or is_digest(value):
        return False
    if entropy(value) < min_entropy:
        return False
    letter, digit, _ = _classes(value)
    return (letter and digit) or _case_changes(value) >= 4


def looks_like_password(value: bytes, min_length: int) -> bool:
    if len(value) < min_length or is_wordy(value) or is_digest(value) or is_uuid(value):
        return False
    letter, digit, symbol = _classes(value)
    return letter and (digit or symbol)


def is_fair_literal(value: bytes) -> bool:
    """Not a placeholder, template, variable, path, URL, sentence or multi-line blob."""
    if not value or len(value) > 1024 or is_placeholder(value) or is_variable(value) or is_path(value):
        return False
    if b"://" in value:
        return False  # a URL: its password is judged on its own
    return not _CONTROL_OR_SPACE.search(value)


def is_variable(value: bytes) -> bool:
    """`$VAR`, `${VAR}`, `$(cmd)`, `$1`, `%APPDATA%`: read from the environment, not written here."""
    if value[:1] == b"$":
        return len(value) == 1 or value[1:2].isalnum() or value[1] in b"{(_"
    return value[:1] == b"%" and value[-1:] == b"%" and len(value) > 2


def is_path(value: bytes) -> bool:
    """A file path (`/etc/ssl/key.pem`, `~/.ssh/id_rsa`, `C:\\keys\\app.pfx`): base64 may start with `/`
    too, but its segments are long and random."""
    if not (value[:1] == b"/" or value[:2] in (b"~/", b"./") or value[:3] == b"../" or value[1:3] in (b":\\", b":/")):
        return False
    segments = [s for s in value.replace(b"\\", b"/").split(b"/") if s and s not in (b"~", b".", b"..")]
    last = segments[-1] if segments else b""
    ext = last.rpartition(b".")[2]
    if b"." in last and 1 <= len(ext) <= 5 and ext.isalpha():
        return True
    return all(len(s) < 16 or is_wordy(s) for s in segments)


# ---------------------------------------------------------------------------------------------
# Formats with a prefix (one scan-pattern branch; the prefix says which check applies)

AWS_EXAMPLE_MARK = b"EXAMPLE"
"""AWS's documented keys end in EXAMPLE (`AKIAIOSFODNN7EXAMPLE`, `wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY`)."""


def _alnum(value: bytes) -> bool:
    return value.isalnum() and value.isascii()


def _token_chars(value: bytes, extra: bytes = b"_-") -> bool:
    return all(c in extra or 48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 for c in value)


def _diverse(body: bytes, minimum: int = 8) -> bool:
    """Random bodies use many distinct characters; `xxxx...`, `0000...`, `abcabc...` do not."""
    return len(set(body)) >= minimum and not is_placeholder(body)


def check_aws_key_id(value: bytes) -> str | None:
    return "aws_access_key_id" if AWS_EXAMPLE_MARK not in value and _diverse(value[4:], 6) else None


def check_prefixed(value: bytes) -> str | None:
    """The type of a token that starts with a vendor prefix, or None for a look-alike."""
    head = value[:4]
    if head in (b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_"):  # detect-secrets GitHubTokenDetector
        body = value[4:]
        return "github_token" if 36 <= len(body) <= 251 and _alnum(body) and _diverse(body) else None
    if value.startswith(b"github_pat_"):  # fine-grained: 22 + '_' + 59
        body = value[11:]
        return "github_token" if len(body) >= 70 and _token_chars(body, b"_") and _diverse(body) else None
    if value.startswith(b"gl") or value.startswith(b"GR1348941"):  # detect-secrets GitLabTokenDetector
        _, sep, body = value.partition(b"-") if not value.startswith(b"GR1348941") else (b"", b"-", value[9:])
        return "gitlab_token" if sep and 20 <= len(body) <= 1024 and _token_chars(body) and _diverse(body) else None
    if value.startswith(b"xox"):  # detect-secrets SlackDetector: xox?-(digits-)+secret
        parts = value.split(b"-")
        ok = len(parts) >= 3 and all(p.isdigit() for p in parts[1:-1]) and _alnum(parts[-1]) and len(parts[-1]) >= 8
        return "slack_token" if ok and _diverse(parts[-1], 6) else None
    if value.startswith(b"xapp-"):  # Slack app-level tokens: xapp-1-A…-digits-hex
        parts = value.split(b"-")
        ok = len(parts) == 5 and parts[1].isdigit() and parts[3].isdigit() and _alnum(parts[4]) and len(parts[4]) >= 32
        return "slack_token" if ok and _diverse(parts[4]) else None
    if value[:3] in (b"sk_", b"rk_"):  # detect-secrets StripeDetector (live keys), and test-mode keys
        body = value[8:]
        ok = value[3:8] in (b"live_", b"test_") and 24 <= len(body) <= 247 and _alnum(body)
        return "stripe_key" if ok and _diverse(body) else None
    if head == b"AIza":  # Google API keys: 39 characters
        body = value[4:]
        return "google_api_key" if len(body) == 35 and _token_chars(body) and _diverse(body) else None
    if value.startswith(b"GOCSPX-") or value.startswith(b"ya29."):  # OAuth client secret, access token
        body = value[7:] if value.startswith(b"GOCSPX-") else value[5:]
        minimum = 28 if value.startswith(b"GOCSPX-") else 20
        return "google_oauth" if len(body) >= minimum and _token_chars(body) and _diverse(body) else None
    if head == b"npm_":  # npm access tokens: npm_ + 36
        body = value[4:]
        return "npm_token" if len(body) == 36 and _alnum(body) and _diverse(body) else None
    if value.startswith(b"pypi-"):  # detect-secrets PypiTokenDetector: a macaroon for pypi.org or test.pypi.org
        ok = value.startswith((b"pypi-AgEIcHlwaS5vcmc", b"pypi-AgENdGVzdC5weXBpLm9yZw")) and len(value) >= 90
        return "pypi_token" if ok and _token_chars(value[5:]) else None
    if value[:3] == b"hf_":  # Hugging Face user access tokens: hf_ + 34 letters
        body = value[3:]
        return "huggingface_token" if len(body) == 34 and body.isalpha() and _diverse(body) else None
    if value[:3] == b"sk-":  # detect-secrets OpenAIDetector, and the project/service-account keys
        body = value[3:]
        marked = b"T3BlbkFJ" in body or body.startswith((b"proj-", b"svcacct-", b"admin-", b"ant-api"))
        return "openai_key" if marked and len(body) >= 40 and _token_chars(body) and _diverse(body) else None
    if value[:3] == b"SG.":  # detect-secrets SendGridDetector: SG. + 22 + . + 43
        parts = value.split(b".")
        ok = len(parts) == 3 and len(parts[1]) == 22 and len(parts[2]) == 43 and _token_chars(parts[1] + parts[2])
        return "sendgrid_key" if ok and _diverse(parts[2]) else None
    return None


JWT_IO_EXAMPLE_SIGNATURE = b"SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
"""The signature of jwt.io's example token (`{"sub": "1234567890", "name": "John Doe", ...}`, secret
`your-256-bit-secret`), which documentation and tests everywhere copy."""


def check_jwt(value: bytes) -> str | None:
    """detect-secrets JwtTokenDetector: header and payload are base64url JSON objects."""
    parts = value.split(b".")
    if len(parts) != 3 or len(parts[2]) < 16 or parts[2] == JWT_IO_EXAMPLE_SIGNATURE:
        return None
    for part in parts[:2]:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(part + b"=" * (-len(part) % 4)))
        except (binascii.Error, ValueError):
            return None
        if not isinstance(decoded, dict):
            return None
    return "jwt"


def check_slack_webhook(path: bytes) -> str | None:
    """`T…/B…/secret` after hooks.slack.com/services/ (detect-secrets SlackDetector)."""
    parts = path.split(b"/")
    ok = len(parts) == 3 and parts[0][:1] == b"T" and parts[1][:1] == b"B" and len(parts[2]) >= 16
    return "slack_token" if ok and _token_chars(parts[2], b"_") and _diverse(parts[2]) else None
