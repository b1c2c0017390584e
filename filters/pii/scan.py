"""Finding and replacing personal data and credentials in one linear pass.

One RE2 pattern (a DFA: linear time on any input, no backtracking) finds every candidate in the UTF-8
bytes of a document: e-mail addresses, dotted IPv4 and global-looking IPv6, vendor-prefixed tokens,
private-key armour, `://user:password@` and `name = value` assignments to secret names. Each
candidate is then judged by a small Python check on its own bytes and a bounded window around it
(at most a line), so work grows with the text and the number of candidates, never their product.

    ctx = ScanContext.for_document(config, kind, lang, path)
    findings = scan(text.encode(), ctx)          # byte spans and types, without overlaps
    redacted, counts = redact(text, ctx)         # the new text, redactions per type

Replacements keep code valid and the output deterministic: only the sensitive characters are
replaced (a literal's quotes, a URL's user and host, a key's armour stay), by reserved values of the
same shape: e-mails become `userN@example.com`, IPv4 addresses RFC 5737 documentation addresses,
IPv6 ones `2001:db8::N` (RFC 3849), numbered by first appearance in the document (the same address
gets the same replacement); secrets become the fixed word `REDACTED_<TYPE>`. No replacement is ever
detected again, so redacting twice changes nothing.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections import Counter
from collections.abc import Iterable

import re2

from lemur_corpus.filters.pii import secrets
from lemur_corpus.filters.pii.config import PiiConfig
from lemur_corpus.filters.pii.tlds import TLDS

_BRANCHES: tuple[tuple[str, bytes], ...] = (
    ("pk_begin", rb"-----BEGIN[A-Z0-9 ]{0,32} PRIVATE KEY(?: BLOCK)?-----"),
    ("pk_end", rb"-----END[A-Z0-9 ]{0,32} PRIVATE KEY(?: BLOCK)?-----"),
    ("url", rb"://[^\s:/?#@'\"<>`]{0,64}:[^\s/?@'\"<>`]{1,128}@"),
    ("aws", rb"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b"),
    ("token", rb"\b(?:gh[pousr]_|github_pat_|gl(?:pat|dt|ft|soat|rt|cbt|ptt|imt|agent|oas)-|GR1348941|xox[abposr]-"
              rb"|xapp-|[rs]k_(?:live|test)_|AIza|GOCSPX-|ya29\.|npm_|pypi-|hf_|sk-|SG\.)[0-9A-Za-z_\-.]*"),
    ("jwt", rb"\beyJ[A-Za-z0-9_\-]+\.eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"),
    ("slack_hook", rb"hooks\.slack\.com/services/[A-Za-z0-9_/]+"),
    ("email", rb"[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z][A-Za-z0-9\-]*"),
    ("ipv4", rb"\b[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}"),
    ("ipv6", rb"\b[23][0-9A-Fa-f]{0,3}:[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:.]*"),
    ("assign", rb"(?i:key|token|secret|passw(?:or)?d|pwd|pass|passphrase|passcode|credentials?)[A-Za-z0-9_.\-]{0,40}"
               rb"[\"'\]]{0,2}[ \t]{0,16}(?::=|=>|==|=|:|<-|>)"),
)
"""Candidate patterns, in priority order where two start at the same byte. Repeats that could span a long
run before another branch's match are bounded: RE2 finds the leftmost match, so a thread that starts
early and stays alive (an e-mail's local part over `1.2.3.4.1.2.3.4...`) would make every search scan to
the end of the run, quadratic over the document."""
BRANCHES: tuple[str, ...] = tuple(name for name, _ in _BRANCHES)


def _options() -> re2.Options:
    options = re2.Options()
    options.max_mem = 64 << 20  # room for the combined DFA's states: without it RE2 falls back to its NFA
    return options


CANDIDATES = re2.compile(b"|".join(b"(?:" + pattern + b")" for _, pattern in _BRANCHES), _options())
"""Without capture groups: RE2 finds the spans with its DFA alone, and `branch` names them."""
ASSIGN_KEYWORDS = (b"key", b"token", b"secret", b"pass", b"pwd", b"credential")
TOKEN_PREFIXES = (b"gh", b"github_pat_", b"gl", b"GR1348941", b"xox", b"xapp-", b"sk_", b"rk_", b"sk-", b"AIza",
                  b"GOCSPX-", b"ya29.", b"npm_", b"pypi-", b"hf_", b"SG.")
DIGITS_AND_DOTS = frozenset(b"0123456789.")
VERSION_CUE = re2.compile(rb"(?i)(?:version|\bver\b|\bv\b|\breleases?\b|\bbuild\b|\bfirmware\b|\bassembly|"
                          rb"\bsdk\b|\bapi\b|\brev\b|\brevision\b|\bsection\b|\bchapter\b|\bfigure\b|\btable\b|"
                          rb"\bstep\b|\bclause\b|\boid\b)")
"""Words that make a four-part dotted number after them on the line a version or a section number."""
IP_CUE = re2.compile(rb"(?i)(?:\bip(?:v4)?\b|\bhost(?:name)?s?\b|\bservers?\b|\baddr(?:ess)?\b|\binet\b|\bping\b|"
                     rb"\bssh\b|\bdns\b|\bproxy\b|\bgateway\b|\broute[sr]?\b|\bbind\b|\blisten|\bremote\b|"
                     rb"\bclient\b|\bconnect|\bpeer\b|\bnameserver|\bfirewall|://|@)")
"""Words that make a dotted number an address whatever its shape."""
VERSION_OCTET = 25
"""Four-part versions start small (`2.5.0.4`, `12.2.0.79`, `6.0.16.251`): with both leading parts at most
this and no network word before it on the line, a dotted number is read as a version. Uniformly drawn
public addresses have that shape about 1% of the time."""

PRIORITY = {"private_key": 6, "password_in_url": 4, "aws_secret_access_key": 3, "password": 3, "secret": 3,
            "email": 2, "ipv4": 1, "ipv6": 1}
"""Which finding wins where two overlap; the vendor formats (5) are the most specific after keys."""
NAME_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
LOCAL_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")
WORD_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
PATH_BYTES = NAME_BYTES | frozenset(b"/~")
BASE64_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/=")
UNQUOTED_VALUE = re.compile(rb"[^ \t\r\n;,&\"'`<>]{0,256}")
"""An unquoted value: up to whitespace, a separator of pairs (`;`, `,`, `&`), a quote or a tag; a longer
run is no secret (only ever matched at one position, so linear)."""
CLOSERS = {ord(")"): b"(", ord("]"): b"[", ord("}"): b"{"}
MAX_NAME = 64
MAX_VALUE = 1024
MAX_KEY_BODY = 16384
MIN_KEY_BASE64 = 64
"""A private key's armour must hold at least this much base64: the smallest real key (EC P-256,
PKCS#8) has 184 characters; code that only checks for the header line has none."""


@dataclasses.dataclass(frozen=True, slots=True)
class Finding:
    start: int
    """Byte offsets into the UTF-8 text: the characters to replace."""
    end: int
    type: str


@dataclasses.dataclass(frozen=True, slots=True)
class ScanContext:
    config: PiiConfig
    unquoted_literals: bool
    """Whether `name = value` with an unquoted value is a literal (config files, shell, prose)."""
    keep_ips: frozenset[str]
    reserved_domains: tuple[bytes, ...]

    @staticmethod
    def for_document(config: PiiConfig, kind: str, lang: str, path: str = "") -> ScanContext:
        keep = frozenset(str(ipaddress.ip_address(a)) for a in config.keep_ips)
        domains = tuple(d.lower().encode() for d in config.reserved_email_domains)
        return ScanContext(config, unquoted_literals(config, kind, lang, path), keep, domains)


def unquoted_literals(config: PiiConfig, kind: str, lang: str, path: str) -> bool:
    """Whether an unquoted `name = value` is a literal in this document: prose, config files, shell
    (by language, or by file name: `settings.ini`, `.env`, `.env.local`)."""
    if kind == "text" or lang in config.unquoted_value_languages:
        return True
    base = path.lower().rsplit("/", 1)[-1]
    extensions = tuple(config.unquoted_value_extensions)
    return base.endswith(extensions) or (base.startswith(extensions) and "." in base[1:])


# ---------------------------------------------------------------------------------------------
# Network identifiers


def check_email(text: bytes, start: int, end: int, ctx: ScanContext) -> str | None:
    local, _, domain = text[start:end].partition(b"@")
    if text[start - 3:start] == b"://" or local.lower() in (b"this", b"super"):
        return None  # a URL's user (ssh://git@host), a Kotlin label (this@Activity.run)
    following = text[end:end + 2]
    if following[:1] == b":" and following[1:2] and following[1] in PATH_BYTES:
        return None  # an scp-style remote: git@github.com:org/repo
    if following[:1] == b"(" or (following[:1] and following[0] in WORD_BYTES):
        return None  # a method call, or the match stopped inside a longer word
    if local.startswith(b".") or local.endswith(b".") or b".." in local or len(local) > 64:
        return None
    labels = domain.lower().split(b".")
    if any(not label or len(label) > 63 or label[0] == 45 or label[-1] == 45 for label in labels):
        return None
    if labels[-1].decode() not in TLDS:
        return None
    lowered = domain.lower()
    return None if any(lowered == d or lowered.endswith(b"." + d) for d in ctx.reserved_domains) else "email"


def _netmask(value: int) -> bool:
    inverted = ~value & 0xFFFFFFFF
    return value != 0 and inverted & (inverted + 1) == 0


def check_ipv4(text: bytes, start: int, end: int, ctx: ScanContext) -> str | None:
    before = text[start - 1] if start else 32
    if before in WORD_BYTES or before == 46:
        return None  # part of a longer dotted token (1.2.3.4.5, v1.2.3.4)
    following = text[end:end + 2]
    if following[:1] and (following[0] in WORD_BYTES or (following[0] == 46 and following[1:2].isalnum())):
        return None  # 1.2.3.4.5, 1.2.3.4.tar.gz, 1.2.3.4a
    parts = text[start:end].split(b".")
    if any(len(p) > 1 and p[0] == 48 for p in parts) or any(int(p) > 255 for p in parts):
        return None  # leading zeros and octets over 255: not an address
    address = ipaddress.IPv4Address(".".join(p.decode() for p in parts))
    if not address.is_global or address.is_multicast or _netmask(int(address)) or str(address) in ctx.keep_ips:
        return None  # private, loopback, link-local, documentation, reserved; masks; public resolvers
    if parts[3] == b"0":
        return None  # a network (17.0.0.0, 13.32.0.0/15), not a host; and the shape of many versions
    if start >= 2 and ((before in b"-~^/" and text[start - 2] in WORD_BYTES) or
                       (before == 61 and text[start - 2] in b"=<>~!")):
        return None  # pkg-1.2.3.4, Chrome/1.2.3.4, pkg==1.2.3.4, pkg>=1.2.3.4 (but host=1.2.3.4 is an address)
    line_start = max(text.rfind(b"\n", max(0, start - 48), start) + 1, start - 48)
    before_text = text[line_start:start].replace(b"_", b" ")  # SERVER_IP, build_version: words too
    if VERSION_CUE.search(before_text):
        return None
    if int(parts[0]) <= VERSION_OCTET and int(parts[1]) <= VERSION_OCTET and not IP_CUE.search(before_text):
        return None  # `WinMerge 2.5.0.4`, `Firefox 2.0.0.16`, section 6.2.4.3: small leading parts, no network word
    return "ipv4"


def ipv6_span(text: bytes, start: int, end: int) -> int:
    """The end of the IPv6 address in a candidate (without a trailing dot or a lone colon)."""
    while end > start and text[end - 1] == 46:
        end -= 1
    if text[end - 1] == 58 and text[end - 2] != 58:
        end -= 1
    return end


def check_ipv6(text: bytes, start: int, end: int, ctx: ScanContext) -> str | None:
    if start and text[start - 1] in b":.":
        return None
    if end < len(text) and text[end] in WORD_BYTES:
        return None
    candidate = text[start:end]
    if b"::" not in candidate and candidate.count(b":") != 7:
        return None  # times (12:30:45), MAC addresses, ratios
    try:
        address = ipaddress.IPv6Address(candidate.decode())
    except ValueError:
        return None
    if not address.is_global or address.is_multicast or str(address) in ctx.keep_ips:
        return None
    return "ipv6"


# ---------------------------------------------------------------------------------------------
# Credentials in URLs and assignments


def check_url_password(text: bytes, start: int, end: int) -> Finding | None:
    """`://user:PASSWORD@`: the password, unless it is a placeholder or a template."""
    userinfo = text[start + 3:end - 1]
    user, _, password = userinfo.partition(b":")
    if not secrets.is_fair_literal(password) or password.lower() == user.lower() or password.isdigit():
        return None  # placeholders, templates; `host:8080@` is a port
    if secrets.is_wordy(password) and password.lower() in secrets.PLACEHOLDER_WORDS:
        return None
    begin = start + 3 + len(user) + 1
    return Finding(begin, begin + len(password), "password_in_url")


def _quoted(text: bytes, at: int) -> tuple[int, int] | None:
    """The inside of the string literal opening at `at`, on one line, escapes honoured."""
    quote = text[at:at + 1]
    limit = min(len(text), at + 1 + MAX_VALUE)
    close = text.find(quote, at + 1, limit)
    while close != -1:
        backslashes = close - len(text[at + 1:close].rstrip(b"\\")) - at - 1
        if backslashes % 2 == 0:
            break
        close = text.find(quote, close + 1, limit)  # an escaped quote: look on
    if close == -1 or text.find(b"\n", at + 1, close) != -1:
        return None
    return at + 1, close


def _value_span(text: bytes, at: int, operator: bytes, ctx: ScanContext,
                name_start: int) -> tuple[int, int, bool] | None:
    """(start, end, quoted) of the value after an assignment operator ending at `at`."""
    n = len(text)
    i = at
    while i < n and text[i] in b" \t":
        i += 1
    if operator == b":" and i < n and text[i] in WORD_BYTES:  # `password: str = "..."`
        j = i
        while j < n and j - i < 40 and (text[j] in WORD_BYTES or text[j] in b"[]|., "):
            j += 1
        if j < n and text[j] == 61 and text[j + 1:j + 2] != b"=":
            i = j + 1
            while i < n and text[i] in b" \t":
                i += 1
    if i < n and text[i] in b"rbuRBU@" and text[i + 1:i + 2] in (b'"', b"'"):
        i += 1  # Python r"" b"" u"", C# @""
    if i >= n:
        return None
    if text[i] in b"\"'`":
        inside = _quoted(text, i)
        return (inside[0], inside[1], True) if inside else None
    run = UNQUOTED_VALUE.match(text, i)  # matches at every position (it may be empty)
    j = _trim_unquoted(text, i, run.end() if run else i)
    before = text[max(0, name_start - 2):name_start].strip()
    in_connection_string = before[-1:] in (b";", b"?", b"&") or text[j:j + 1] in (b";", b"&")
    if operator == b">":
        return (i, j, False) if text[j:j + 2] == b"</" else None
    if not (ctx.unquoted_literals or in_connection_string):
        return None
    return i, j, False


def _is_call(value: bytes) -> bool:
    """`getpass.getpass(`, `os.environ[`, `config.get(`: an expression, not a literal."""
    cut = min((i for i in (value.find(b"("), value.find(b"[")) if i > 0), default=-1)
    head = value[:cut]
    closed = cut == len(value) - 1 or value[-1:] in b")]"
    return cut > 0 and closed and secrets.is_wordy(head.replace(b"_", b"."))


def _trim_unquoted(text: bytes, start: int, end: int) -> int:
    """An unquoted value without what closes its context: a bracket it did not open (`f(password=x)`),
    a sentence's final punctuation."""
    while end > start:
        last = text[end - 1]
        value = text[start:end]
        if last in CLOSERS and value.count(CLOSERS[last]) < value.count(bytes([last])):
            end -= 1
        elif last in b".,:!?" and (end == len(text) or text[end] in b" \t\r\n"):
            end -= 1
        else:
            break
    return end


def check_assignment(text: bytes, start: int, end: int, ctx: ScanContext) -> Finding | None:
    """`API_KEY = "…"`, `password: …`, `Password=…;`, `<password>…</password>`: the value, when the
    name holds a credential and the value is a literal that looks like one."""
    name_start = start
    while name_start > max(0, start - MAX_NAME) and text[name_start - 1] in NAME_BYTES:
        name_start -= 1
    name_end = start
    while name_end < end and text[name_end] in NAME_BYTES:
        name_end += 1
    operator = text[name_end:end].strip(b"\"'] \t")
    kind = secrets.name_kind(text[name_start:name_end].decode("ascii"))
    if kind is None:
        return None
    if operator == b">" and (name_start == 0 or text[name_start - 1] != 60):
        return None  # `>` only closes an XML element's opening tag
    span = _value_span(text, end, operator, ctx, name_start)
    if span is None:
        return None
    value_start, value_end, quoted = span
    value = text[value_start:value_end]
    if not secrets.is_fair_literal(value):
        return None
    if not quoted and (value in (b"~", b"|", b"|-", b">") or value[:1] in b"{[" or _is_call(value)
                       or (value[:1] in b"!*&" and secrets.is_wordy(value.lstrip(b"!*&")))):
        return None  # YAML nulls, block scalars, flow collections, tags, aliases, anchors; calls, subscripts
    config = ctx.config
    if kind == "password":
        ok = secrets.looks_like_password(value, config.min_password_length)
    else:
        ok = secrets.looks_random(value, config.min_secret_length, config.min_secret_entropy)
    if not ok:
        return None
    if kind == "aws_secret" and len(value) == 40 and all(c in BASE64_BYTES for c in value):
        return None if secrets.AWS_EXAMPLE_MARK in value else Finding(value_start, value_end,
                                                                       "aws_secret_access_key")
    return Finding(value_start, value_end, "password" if kind == "password" else "secret")


# ---------------------------------------------------------------------------------------------
# Private keys: armour lines paired in one pass


def _inner(text: bytes, start: int, end: int) -> tuple[int, int]:
    """`start..end` without leading and trailing whitespace or `\\n`-style escapes."""
    while start < end:
        if text[start] in b" \t\r\n":
            start += 1
        elif text[start] == 92 and text[start + 1:start + 2] in (b"n", b"r", b"t"):
            start += 2
        else:
            break
    while end > start:
        if text[end - 1] in b" \t\r\n":
            end -= 1
        elif text[end - 2:end - 1] == b"\\" and text[end - 1:end] in (b"n", b"r", b"t"):
            end -= 2
        else:
            break
    return start, end


def private_keys(text: bytes, begins: list[tuple[int, int]], ends: list[tuple[int, int]]) -> list[Finding]:
    """The body of every BEGIN…PRIVATE KEY armour, up to its END line, or, with no END before the next
    BEGIN (a truncated file), up to the end of the base64 run that follows."""
    found = []
    j = 0
    for i, (_, body_start) in enumerate(begins):
        next_begin = begins[i + 1][0] if i + 1 < len(begins) else len(text)
        while j < len(ends) and ends[j][0] < body_start:
            j += 1
        if j < len(ends) and ends[j][0] <= min(next_begin, body_start + MAX_KEY_BODY):
            body_end = ends[j][0]
        else:
            body_end = body_start
            limit = min(next_begin, body_start + MAX_KEY_BODY)
            while body_end < limit and (text[body_end] in BASE64_BYTES or text[body_end] in b" \t\r\n\\"):
                body_end += 1
        start, end = _inner(text, body_start, body_end)
        if sum(1 for c in text[start:end] if c in BASE64_BYTES) >= MIN_KEY_BASE64:
            found.append(Finding(start, end, "private_key"))
    return found


# ---------------------------------------------------------------------------------------------
# The scan


def branch(matched: bytes) -> str:
    """Which branch of CANDIDATES matched these bytes, told by their shape (one Python test instead
    of RE2's submatch pass; no two branches produce the same shape, tests/test_pii.py checks it)."""
    head = matched[:16]
    if head.startswith(b"-----"):
        return "pk_begin" if head.startswith(b"-----BEGIN") else "pk_end"
    if head.startswith(b"://"):
        return "url"
    if b"@" in matched:
        return "email"
    if head.startswith(b"hooks.slack"):
        return "slack_hook"
    if all(c in DIGITS_AND_DOTS for c in matched):
        return "ipv4"
    if head.lower().startswith(ASSIGN_KEYWORDS):
        return "assign"
    if head.startswith(b"eyJ"):
        return "jwt"
    if head.startswith(TOKEN_PREFIXES):
        return "token"
    if b":" in matched:
        return "ipv6"
    return "aws"


def scan(text: bytes, ctx: ScanContext) -> list[Finding]:
    """Every finding in `text` (UTF-8), in order, without overlaps (the more specific one wins)."""
    findings: list[Finding] = []
    begins: list[tuple[int, int]] = []
    ends: list[tuple[int, int]] = []
    for match in CANDIDATES.finditer(text):
        start, end = match.span()
        group = branch(text[start:end])
        found: Finding | None = None
        kind: str | None = None
        if group == "email":
            kind = check_email(text, start, end, ctx)
        elif group == "ipv4":
            kind = check_ipv4(text, start, end, ctx)
        elif group == "ipv6":
            end = ipv6_span(text, start, end)
            kind = check_ipv6(text, start, end, ctx)
        elif group == "assign":
            found = check_assignment(text, start, end, ctx)
        elif group == "token":
            while text[end - 1] in b".-" and end > start:
                end -= 1
            kind = secrets.check_prefixed(text[start:end])
        elif group == "aws":
            kind = secrets.check_aws_key_id(text[start:end])
        elif group == "jwt":
            kind = secrets.check_jwt(text[start:end])
        elif group == "slack_hook":
            path_start = start + len(b"hooks.slack.com/services/")
            kind = secrets.check_slack_webhook(text[path_start:end].rstrip(b"/"))
            start, end = path_start, end - (len(text[path_start:end]) - len(text[path_start:end].rstrip(b"/")))
        elif group == "url":
            found = check_url_password(text, start, end)
        elif group == "pk_begin":
            begins.append((start, end))
        elif group == "pk_end":
            ends.append((start, end))
        if kind is not None:
            found = Finding(start, end, kind)
        if found is not None:
            findings.append(found)
    if begins:
        findings.extend(private_keys(text, begins, ends))
    enabled = set(ctx.config.types)
    return resolve_overlaps(f for f in findings if f.type in enabled)


def resolve_overlaps(findings: Iterable[Finding]) -> list[Finding]:
    """Sorted findings, of two that overlap only the higher priority one (then the longer)."""
    ordered = sorted(findings, key=lambda f: (f.start, -PRIORITY.get(f.type, 5), -f.end))
    kept: list[Finding] = []
    for finding in ordered:
        while kept and finding.start < kept[-1].end:
            last = kept[-1]
            if (PRIORITY.get(finding.type, 5), finding.end - finding.start) <= (PRIORITY.get(last.type, 5),
                                                                                 last.end - last.start):
                break
            kept.pop()
        else:
            kept.append(finding)
    return kept


# ---------------------------------------------------------------------------------------------
# Replacements

PLACEHOLDERS = {"password_in_url": b"REDACTED_PASSWORD"}
"""Secrets become `REDACTED_<TYPE>`: a word, valid bare or inside any literal, never detected again."""
DOCUMENTATION_V4 = ("192.0.2.", "198.51.100.", "203.0.113.")
"""RFC 5737 TEST-NET-1/2/3: never routed, so no replacement names anybody."""


def replacement(finding: Finding, original: bytes, numbers: dict[str, dict[bytes, int]]) -> bytes:
    """The reserved value standing in for `original`; `numbers` numbers e-mails and addresses by
    first appearance in the document, so one address keeps one replacement."""
    if finding.type in ("email", "ipv4", "ipv6"):
        seen = numbers.setdefault(finding.type, {})
        n = seen.setdefault(original.lower(), len(seen))
        if finding.type == "email":
            return b"user%d@example.com" % (n + 1)
        if finding.type == "ipv4":
            return f"{DOCUMENTATION_V4[n // 254 % 3]}{n % 254 + 1}".encode()
        return b"2001:db8::%x" % (n + 1)
    return PLACEHOLDERS.get(finding.type) or b"REDACTED_" + finding.type.upper().encode()


def redact_bytes(text: bytes, findings: list[Finding]) -> bytes:
    numbers: dict[str, dict[bytes, int]] = {}
    parts = []
    last = 0
    for finding in findings:
        parts.append(text[last:finding.start])
        parts.append(replacement(finding, text[finding.start:finding.end], numbers))
        last = finding.end
    parts.append(text[last:])
    return b"".join(parts)


def redact(text: str, ctx: ScanContext) -> tuple[str, Counter[str]]:
    """(redacted text, redactions per type); the text itself when nothing was found."""
    data = text.encode("utf-8", "surrogatepass")
    findings = scan(data, ctx)
    if not findings:
        return text, Counter()
    redacted = redact_bytes(data, findings).decode("utf-8", "surrogatepass")
    return redacted, Counter(f.type for f in findings)
