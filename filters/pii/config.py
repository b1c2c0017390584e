"""Settings of the `pii` filter (both chains). Every default names where it comes from.

Sources cited below:
- detect-secrets (Yelp, Apache-2.0), the secret scanner bigcode ran over The Stack for StarCoder: its
  plugins' formats (AWS, GitHub, GitLab, Slack, Stripe, private keys, basic-auth URLs, keyword
  assignments) and its `HexHighEntropyString` limit of 3.0 bits per character.
- bigcode-project/bigcode-dataset `pii/`: the e-mail and IP regexes of StarCoder's redaction, which keep
  private IPs and popular public DNS resolvers (`POPULAR_DNS_SERVERS` of `utils/replacements.py`).
- RFC 2606 (reserved example domains and TLDs), RFC 5737 / RFC 3849 (documentation address ranges).
- Measurements on ../shared/data (real code and web pages): see benchmarks/pii_quality.py.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from lemur_corpus.configbase import StrictModel

PII_TYPES: tuple[str, ...] = (
    "email", "ipv4", "ipv6",
    "aws_access_key_id", "aws_secret_access_key", "github_token", "gitlab_token", "slack_token",
    "stripe_key", "google_api_key", "google_oauth", "npm_token", "pypi_token", "huggingface_token",
    "openai_key", "sendgrid_key", "jwt", "private_key", "password_in_url", "password", "secret",
)
"""Every kind of value the filter redacts: the keys of its signals and of the manifest's counts.
`password_in_url`: `scheme://user:PASSWORD@host`; `password`: a literal assigned to a password name
(`password = "..."`, `Password=...;` of a connection string); `secret`: a high-entropy literal assigned
to a `*_KEY`, `*_TOKEN`, `*_SECRET` or credential name. All but the first three are secrets."""

SECRET_TYPES: tuple[str, ...] = PII_TYPES[3:]

# bigcode's POPULAR_DNS_SERVERS (Google, Cloudflare, Quad9, OpenDNS, Comodo, Level3...): addresses
# every network tutorial names, which identify nobody.
POPULAR_DNS_SERVERS: tuple[str, ...] = (
    "8.8.8.8", "8.8.4.4", "1.1.1.1", "1.0.0.1", "76.76.19.19", "76.223.122.150", "9.9.9.9",
    "149.112.112.112", "208.67.222.222", "208.67.220.220", "8.26.56.26", "8.20.247.20", "94.140.14.14",
    "94.140.15.15", "4.2.2.1", "4.2.2.2", "2001:4860:4860::8888", "2001:4860:4860::8844",
    "2606:4700:4700::1111", "2606:4700:4700::1001", "2620:fe::fe", "2620:fe::9",
)

# Languages (The Stack's `lang`) whose `name = value` takes an unquoted value as a literal string. In
# the others an unquoted right-hand side is an expression (`password = getpass()`) and only quoted
# literals, and values inside connection strings, count. Text documents are always read this way.
UNQUOTED_VALUE_LANGUAGES: tuple[str, ...] = (
    "YAML", "INI", "TOML", "Shell", "Bash", "Dockerfile", "Makefile", "Markdown", "Text", "Java Properties",
    "Git Config", "SSH Config", "Nginx", "ApacheConf", "Batchfile", "PowerShell", "Dotenv", "Dotenv File",
    "HCL", "Jupyter Notebook", "reStructuredText", "AsciiDoc", "Org", "Procfile", "Terraform",
)
UNQUOTED_VALUE_EXTENSIONS: tuple[str, ...] = (
    ".env", ".ini", ".cfg", ".conf", ".properties", ".toml", ".yaml", ".yml", ".sh", ".bash", ".zsh", ".md",
    ".txt", ".rst", ".npmrc", ".pypirc", ".netrc", ".htpasswd", ".tf", ".tfvars",
)


class PiiConfig(StrictModel):
    types: list[str] = Field(default_factory=lambda: list(PII_TYPES))
    """The kinds redacted; leave one out to keep its values (and stop counting them)."""
    max_hits: int | None = Field(default=None, ge=0)
    """Drop a document with more redactions than this (`pii.too_many_hits`): a dump of addresses or
    keys is data, not code or prose. None (the default) keeps every document, redacted."""
    min_secret_length: int = Field(default=16, ge=1)
    """A value assigned to a `*_KEY`/`*_TOKEN`/`*_SECRET` name counts from this many characters: the
    vendors' formats are longer (AWS key id 20, Stripe 32, GitHub 40), and below it a random string
    and a word are hard to tell apart by their characters."""
    min_secret_entropy: float = Field(default=3.0, ge=0)
    """...and from this Shannon entropy (bits per character): detect-secrets' `HexHighEntropyString`
    limit. Measured on 2,000 random strings each: hexadecimal of 32 characters has mean 3.61 bits
    (1st percentile 3.24), of 16 characters mean 3.21 (1st percentile 2.66); base62 of 16 characters
    mean 3.77 (1st percentile 3.33). Letters-only values must also change case like no identifier."""
    min_password_length: int = Field(default=6, ge=1)
    """A literal assigned to a password name counts from this many characters and with a digit or
    symbol among letters; shorter or all-letter values are words (`"Passwort"`, `"secret"`)."""
    keep_ips: list[str] = Field(default_factory=lambda: list(POPULAR_DNS_SERVERS))
    """Public addresses left alone: bigcode's popular DNS resolvers."""
    reserved_email_domains: list[str] = Field(default_factory=lambda: ["example.com", "example.org", "example.net"])
    """Addresses at these domains (and their subdomains) are examples by RFC 2606 §3 and stay."""
    unquoted_value_languages: list[str] = Field(default_factory=lambda: list(UNQUOTED_VALUE_LANGUAGES))
    """Code languages where `name = value` with an unquoted value is a literal (config files, shell)."""
    unquoted_value_extensions: list[str] = Field(default_factory=lambda: list(UNQUOTED_VALUE_EXTENSIONS))
    """File extensions (of `meta.path`) read the same way, whatever the language label."""

    @field_validator("types")
    @classmethod
    def _known_types(cls, types: list[str]) -> list[str]:
        unknown = [t for t in types if t not in PII_TYPES]
        if unknown:
            raise ValueError(f"unknown PII type(s): {', '.join(unknown)} (known: {', '.join(PII_TYPES)})")
        return types

    @field_validator("keep_ips")
    @classmethod
    def _addresses(cls, addresses: list[str]) -> list[str]:
        import ipaddress

        for address in addresses:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ValueError(f"{address!r} is not an IP address") from None
        return addresses
