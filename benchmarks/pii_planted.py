"""Planted PII sets: real documents of ../shared/data with random values in real formats, and benign
look-alikes, inserted where such things occur (author headers, settings modules, connection strings,
logs, pasted configs in prose). Used by benchmarks/pii_quality.py and tests/test_pii_real.py.

Every value is drawn from a seeded RNG in its real format (an AWS key id is AKIA + 16 base-32
characters, a GitHub token ghp_ + 36 alphanumerics, a private key real PEM armour around random
base64...): never a real credential. A planted item records where its value sits in the document
(character offsets), so a detector can be scored on it, and look-alikes record the snippet that
must come out byte-identical.

    items = planted_set(data_dir, seed=1, per_type=40)
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import json
import random
import string
import uuid
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import read_jsonl
from lemur_corpus.document import Document

ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"
FIRST = ["anna", "john", "maria", "wei", "fatima", "lars", "sofia", "rahul", "olga", "pierre", "kenji", "amara",
         "diego", "hana", "tomasz", "leila", "noah", "ines", "yusuf", "emma", "carlos", "mei", "ivan", "zoe"]
LAST = ["smith", "mueller", "garcia", "chen", "okafor", "johansson", "rossi", "patel", "ivanova", "dubois",
        "tanaka", "nkemelu", "fernandez", "kim", "kowalski", "haddad", "brown", "silva", "demir", "novak"]
DOMAINS = ["gmail.com", "yahoo.co.uk", "outlook.com", "web.de", "gmx.net", "mail.ru", "qq.com", "proton.me",
           "icloud.com", "hotmail.fr", "uni-heidelberg.de", "cs.stanford.edu", "acme-corp.io", "datalab.ai",
           "fastmail.fm", "t-online.de", "orange.fr", "libero.it", "naver.com", "yandex.ru", "company.co.jp",
           "studio.design", "shop.online", "startup.tech", "agency.digital", "bank.com.br", "gov.in", "nhs.uk"]
HOSTS = ["db.internal.corp.com", "prod-db-01.company.net", "cluster0.mongodb.net", "redis.myapp.io", "10.1.2.3",
         "localhost", "pg.eu-west-1.rds.amazonaws.com", "sql.hosting.de"]


def _name(rng: random.Random) -> tuple[str, str]:
    return rng.choice(FIRST), rng.choice(LAST)


def _s(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def gen_email(rng: random.Random) -> str:
    first, last = _name(rng)
    local = rng.choice([f"{first}.{last}", f"{first}{last}", f"{first[0]}{last}", f"{first}_{last}{rng.randint(1, 99)}",
                        f"{first}+{rng.choice(['github', 'news', 'dev'])}", f"{last}.{first}{rng.randint(1970, 2005)}"])
    address = f"{local}@{rng.choice(DOMAINS)}"
    return address.title() if rng.random() < 0.15 else address  # John.Smith@Gmail.Com happens


def gen_ipv4(rng: random.Random) -> str:
    """A uniformly drawn global unicast host address (last octet 1-254)."""
    while True:
        a = ipaddress.IPv4Address(rng.randrange(1 << 24, 224 << 24))
        if a.is_global and not a.is_multicast and 0 < int(a) % 256 < 255:
            return str(a)


def gen_ipv6(rng: random.Random) -> str:
    while True:
        a = ipaddress.IPv6Address((rng.randrange(0x2000, 0x4000) << 112) | rng.getrandbits(112))
        if a.is_global:
            return a.compressed if rng.random() < 0.7 else a.exploded


def gen_pem(rng: random.Random, escaped: bool = False) -> str:
    label = rng.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"])
    body = base64.b64encode(rng.randbytes(rng.choice([121, 270, 1190]))).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    newline = "\\n" if escaped else "\n"
    return f"-----BEGIN {label}-----{newline}" + newline.join(lines) + f"{newline}-----END {label}-----"


def gen_jwt(rng: random.Random) -> str:
    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
    header = part({"alg": rng.choice(["HS256", "RS256"]), "typ": "JWT"})
    payload = part({"sub": str(rng.randint(10**6, 10**9)), "name": " ".join(_name(rng)).title(),
                    "iat": rng.randint(1_500_000_000, 1_800_000_000)})
    return f"{header}.{payload}.{base64.urlsafe_b64encode(rng.randbytes(32)).decode().rstrip('=')}"


def gen_password(rng: random.Random) -> str:
    """What password generators produce: letters, digits and symbols, 10-20 characters."""
    n = rng.randint(10, 20)
    chars = [rng.choice(string.ascii_letters) for _ in range(n - 3)]
    chars += [rng.choice(string.digits), rng.choice(string.digits), rng.choice("!#%*+-_.~")]
    rng.shuffle(chars)
    return "".join(chars)


GENERATORS: dict[str, Callable[[random.Random], str]] = {
    "email": gen_email,
    "ipv4": gen_ipv4,
    "ipv6": gen_ipv6,
    "aws_access_key_id": lambda r: "AKIA" + _s(r, string.ascii_uppercase + "234567", 16),
    "aws_secret_access_key": lambda r: _s(r, B64, 40),
    "github_token": lambda r: r.choice(["ghp_", "gho_", "ghs_"]) + _s(r, ALNUM, 36) if r.random() < 0.7
    else "github_pat_" + _s(r, ALNUM, 22) + "_" + _s(r, ALNUM, 59),
    "gitlab_token": lambda r: "glpat-" + _s(r, B64URL, 20),
    "slack_token": lambda r: r.choice(["xoxb-", "xoxp-"]) + f"{r.randint(10**10, 10**13)}-{r.randint(10**10, 10**13)}-"
    + _s(r, ALNUM, 24),
    "stripe_key": lambda r: r.choice(["sk_live_", "rk_live_", "sk_test_"]) + _s(r, ALNUM, r.choice([24, 99])),
    "google_api_key": lambda r: "AIza" + _s(r, B64URL, 35),
    "google_oauth": lambda r: "GOCSPX-" + _s(r, B64URL, 28),
    "npm_token": lambda r: "npm_" + _s(r, ALNUM, 36),
    "pypi_token": lambda r: "pypi-AgEIcHlwaS5vcmc" + _s(r, B64URL, 150),
    "huggingface_token": lambda r: "hf_" + _s(r, string.ascii_letters, 34),
    "openai_key": lambda r: "sk-proj-" + _s(r, B64URL, 56) + "T3BlbkFJ" + _s(r, B64URL, 56),
    "sendgrid_key": lambda r: "SG." + _s(r, B64URL, 22) + "." + _s(r, B64URL, 43),
    "jwt": gen_jwt,
    "private_key": gen_pem,
    "password_in_url": gen_password,
    "password": gen_password,
    "secret": lambda r: r.choice([_s(r, "0123456789abcdef", r.choice([32, 40, 64])), _s(r, ALNUM, r.randint(24, 48)),
                                  _s(r, ALNUM + "!@#%^*(-_=+)", 50), base64.b64encode(r.randbytes(32)).decode()]),
}

# Where each kind of value is written, per family of document. `{v}` is the value; `{n}`, `{u}`,
# `{h}` a person's name, a user name and a host; `{c}` the family's comment marker.
FAMILIES = {"py": "#", "c": "//", "sh": "#", "text": ""}
TOKEN_NAMES = {
    "aws_access_key_id": ["AWS_ACCESS_KEY_ID", "aws_access_key_id", "accessKeyId"],
    "github_token": ["GITHUB_TOKEN", "GH_TOKEN", "github_token"], "gitlab_token": ["GITLAB_TOKEN", "CI_TOKEN"],
    "slack_token": ["SLACK_BOT_TOKEN", "slack_token"], "stripe_key": ["STRIPE_SECRET_KEY", "stripe.api_key"],
    "google_api_key": ["GOOGLE_API_KEY", "MAPS_API_KEY", "apiKey"], "google_oauth": ["client_secret",
                                                                                     "GOOGLE_CLIENT_SECRET"],
    "npm_token": ["NPM_TOKEN"], "pypi_token": ["password", "TWINE_PASSWORD"], "huggingface_token": ["HF_TOKEN"],
    "openai_key": ["OPENAI_API_KEY", "openai.api_key"], "sendgrid_key": ["SENDGRID_API_KEY"],
    "jwt": ["ACCESS_TOKEN", "jwt", "authToken"], "aws_secret_access_key": ["aws_secret_access_key",
                                                                           "AWS_SECRET_ACCESS_KEY", "secretAccessKey"],
}
SECRET_NAMES = ["SECRET_KEY", "API_KEY", "api_token", "client_secret", "JWT_SECRET", "auth_token", "apiKey",
                "webhookSecret", "ENCRYPTION_KEY", "private_token", "SESSION_SECRET", "accessToken"]
PASSWORD_NAMES = ["password", "PASSWORD", "db_password", "DB_PASS", "passwd", "adminPassword", "MYSQL_ROOT_PASSWORD",
                  "pwd", "smtp_password", "keystorePassword"]


def _assignments(names: list[str]) -> dict[str, list[str]]:
    return {
        "py": [f'{n} = "{{v}}"' for n in names] + [f"{n}='{{v}}'" for n in names[:2]]
        + [f'settings = {{{{"{n}": "{{v}}"}}}}' for n in names[:2]],
        "c": [f'const {n.replace(".", "_")} = "{{v}}";' for n in names] + [f'    "{n}": "{{v}}",' for n in names[:2]]
        + [f'private static final String {n.replace(".", "_").upper()} = "{{v}}";' for n in names[:1]]
        + [f'{n.replace(".", "_")} := "{{v}}"' for n in names[1:2]]
        + [f"${n.replace('.', '_')} = '{{v}}';" for n in names[:1]]
        + [f"  :{n.replace('.', '_').lower()} => '{{v}}'," for n in names[2:3]]
        + [f'{n.replace(".", "_")} = "{{v}}"' for n in names[3:4]],
        "sh": [f"export {n.replace('.', '_').upper()}={{v}}" for n in names] + [f"  {n}: {{v}}" for n in names[:2]]
        + [f'{n.replace(".", "_").upper()}="{{v}}"' for n in names[:1]] + [f'  {n}: "{{v}}"' for n in names[1:2]]
        + [f"{n.lower().replace('_', '.')}={{v}}" for n in names[2:3]] + [f"<{n}>{{v}}</{n}>" for n in names[:1]],
        "text": [f"Here is my config:\n\n    {n} = {{v}}\n\nbut it does not work." for n in names[:2]]
        + [f"I set {n}={{v}} in the .env file and restarted the server." for n in names[:1]]
        + [f"```\n{n}: {{v}}\n```" for n in names[:1]],
    }


def contexts(kind: str) -> dict[str, list[str]]:
    if kind == "email":
        return {
            "py": ["{c} Author: {n} <{v}>", '__email__ = "{v}"', "{c} Copyright (c) 2021 {n} ({v})",
                   'setup(name="pkg", author="{n}", author_email="{v}")', "{c} Signed-off-by: {n} <{v}>"],
            "c": ["/**\n * @author {n} <{v}>\n */", '  "author": "{n} <{v}>",', "{c} Maintainer: {v}",
                  ' * Copyright 2019 {n} - {v}', 'const ADMIN_EMAIL = "{v}";'],
            "sh": ["{c} Maintainer: {n} <{v}>", 'LABEL maintainer="{v}"', 'git config user.email "{v}"',
                   "  email: {v}"],
            "text": ["For questions, contact {n} at {v}.", "Email: {v}", "You can reach me via {v} or on Twitter.",
                     "On Mon, 3 May 2021, {n} <{v}> wrote:",
                     '<a href="mailto:{v}">{n}</a>', "Posted by {n} ({v}) on 12 March 2021"],
        }
    if kind in ("ipv4", "ipv6"):
        host = "{v}" if kind == "ipv4" else "[{v}]"
        return {
            "py": ['SERVER = "{v}"', f'requests.get("http://{host}:8080/api/v1/status")', 'ALLOWED_HOSTS = ["{v}"]',
                   "{c} production box: {v}", 'client = MongoClient("{v}", 27017)', 'sock.connect(("{v}", 443))'],
            "c": ['const host = "{v}";', f'fetch("http://{host}/login")', 'String SERVER_IP = "{v}";',
                  "{c} fallback to {v} if DNS fails", 'var addr = IPAddress.Parse("{v}");'],
            "sh": ["ssh deploy@{v}", "ping -c 3 {v}", "HOST={v}", "  ip: {v}", "nmap -sV {v}", "{v}    prod-web-01",
                   f"  server {host}:443 weight=5;",
                   "Accepted publickey for root from {v} port 52144 ssh2", "iptables -A INPUT -s {v} -j DROP"],
            "text": ["My server's address is {v} and it stopped responding yesterday.",
                     "Not logged in - {v}", "Connection from {v} was refused.",
                     "[client {v}] File does not exist: /var/www/favicon.ico",
                     "Our office IP is {v}, please whitelist it."],
        }
    if kind == "private_key":
        return {
            "py": ['PRIVATE_KEY = """{v}\n"""', 'key = "{e}"'],
            "c": ['const privateKey = `{v}`;', '  "private_key": "{e}\\n",'],
            "sh": ["cat > ~/.ssh/id_rsa <<EOF\n{v}\nEOF", "{v}"],
            "text": ["I pasted my key below, what is wrong?\n\n{v}\n\nThanks!", "{v}"],
        }
    if kind == "password_in_url":
        urls = ["postgresql://{u}:{v}@{h}:5432/app", "mysql://{u}:{v}@{h}/shop", "mongodb+srv://{u}:{v}@{h}/test",
                "redis://:{v}@{h}:6379/0", "amqp://{u}:{v}@{h}:5672//", "https://{u}:{v}@{h}/repo.git"]
        return {
            "py": [f'DATABASE_URL = "{u}"' for u in urls[:4]] + [f'engine = create_engine("{urls[0]}")'],
            "c": [f'const uri = "{u}";' for u in urls[1:4]] + [f'jdbcUrl = "jdbc:{urls[1]}";'],
            "sh": [f"export DATABASE_URL={u}" for u in urls[:2]] + [f"git clone {urls[5]}", f"  url: {urls[4]}"],
            "text": [f"I connect with {urls[0]} but get a timeout.", f"Try `{urls[3]}` in your settings."],
        }
    if kind == "password":
        table = _assignments(PASSWORD_NAMES)
        conn = "Server={h};Database=app;User Id={u};Password={v};"
        table["c"].append(f'"DefaultConnection": "{conn}"')
        table["py"].append(f'CONN = "{conn}"')
        table["sh"].append("jdbc:sqlserver://{h}:1433;databaseName=app;user={u};password={v};")
        return table
    if kind == "secret":
        return _assignments(SECRET_NAMES)
    return _assignments(TOKEN_NAMES.get(kind, ["TOKEN"]))


# ---------------------------------------------------------------------------------------------
# Look-alikes: snippets that must come out byte-identical


def _sha(rng: random.Random, n: int = 40) -> str:
    return _s(rng, "0123456789abcdef", n)


def _version(rng: random.Random) -> str:
    return f"{rng.randint(1, 30)}.{rng.randint(0, 30)}.{rng.randint(0, 255)}.{rng.randint(1, 255)}"


def _private_ip(rng: random.Random) -> str:
    return rng.choice([f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                       f"172.{rng.randint(16, 31)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                       f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                       f"fd{_sha(rng, 2)}:{_sha(rng, 4)}::{_sha(rng, 3)}"])


LOOKALIKES: dict[str, Callable[[random.Random], str]] = {
    "example_email": lambda r: r.choice(["{c} Contact: jane.doe@example.com", 'EMAIL = "admin@example.org"',
                                         '  "author": "Test User <test@mail.example.net>",',
                                         "email: user@example.com"]),
    "git_remote": lambda r: r.choice(["git clone git@github.com:{o}/{o}-tools.git",
                                      "\turl = git@gitlab.com:{o}/infra.git", 'REPO = "git@github.com:{o}/app.git"',
                                      "git remote add origin ssh://git@github.com/{o}/site.git"]),
    "decorator": lambda r: r.choice(['@app.route("/api/users/<int:user_id>")', "@pytest.mark.parametrize('x', [1, 2])",
                                     "@functools.lru_cache(maxsize=None)", "@dataclasses.dataclass(frozen=True)"]),
    "annotation": lambda r: r.choice(["@Override", '@SuppressWarnings("unchecked")',
                                      "@Autowired\nprivate UserService users;",
                                      " * @param email the user's address", '@RequestMapping(value = "/users")']),
    "npm_scope": lambda r: r.choice(['"@babel/core": "^7.22.5",', 'import { Component } from "@angular/core";',
                                     "npm install @types/node@20.4.2", 'import x from "@scope/pkg@1.2.3";']),
    "css_at_rule": lambda r: r.choice(["@media (max-width: 768px) {", '@import url("theme.css");', "@font-face {",
                                       "@keyframes spin {", "@supports (display: grid) {"]),
    "private_ip": lambda r: r.choice(['SERVER = "{p}"', "ping -c 3 {p}", "My router is at {p}.", "{p}    nas.local"]),
    "loopback": lambda r: r.choice(['HOST = "127.0.0.1"', "curl http://localhost:8000/", "listen [::1]:8080;",
                                    f"bind 127.0.{r.randint(0, 255)}.{r.randint(1, 254)}"]),
    "link_local": lambda r: r.choice([f"inet 169.254.{r.randint(0, 255)}.{r.randint(1, 254)}",
                                      f"fe80::{_sha(r, 4)}:{_sha(r, 4)}%eth0",
                                      "metadata at http://169.254.169.254/latest/"]),
    "documentation_ip": lambda r: r.choice([f"host = 192.0.2.{r.randint(1, 254)}",
                                            f"ping 198.51.100.{r.randint(1, 254)}",
                                            f"server 203.0.113.{r.randint(1, 254)}:443;",
                                            f"addr = '2001:db8:{_sha(r, 4)}::{_sha(r, 2)}'"]),
    "netmask": lambda r: r.choice(["netmask 255.255.255.0", 'MASK = "255.255.240.0"', "wildcard 0.0.0.255",
                                   "ifconfig eth0 10.0.0.2 netmask 255.255.0.0"]),
    "version_4part": lambda r: r.choice(['__version__ = "{ver}"', '[assembly: AssemblyVersion("{ver}")]',
                                         "Version: {ver}", "pip install pkg=={ver}", "<version>{ver}</version>",
                                         "Release {ver} fixes a crash.", "wget https://example.org/tool-{ver}.tar.gz",
                                         '  "version": "{ver}",', "v{ver}"]),
    "git_sha": lambda r: r.choice([f"commit {_sha(r)}", f'"rev": "{_sha(r)}",', f"git checkout {_sha(r, 7)}",
                                   f"Merge: {_sha(r, 7)} {_sha(r, 7)}", f'COMMIT_SHA = "{_sha(r)}"']),
    "checksum": lambda r: r.choice([f"sha256sums=('{_sha(r, 64)}')",
                                    f'"integrity": "sha512-{base64.b64encode(r.randbytes(64)).decode()}",',
                                    f'md5 = "{_sha(r, 32)}"', f"SHA256 (tool.tar.gz) = {_sha(r, 64)}",
                                    f"checksum: sha256:{_sha(r, 64)}", f'"etag": "{_sha(r, 32)}"']),
    "uuid": lambda r: r.choice([f'id = "{uuid.UUID(int=r.getrandbits(128))}"',
                                f'"uuid": "{uuid.UUID(int=r.getrandbits(128))}",',
                                f'ProjectGuid = "{{{str(uuid.UUID(int=r.getrandbits(128))).upper()}}}"',
                                f"request_id: {uuid.UUID(int=r.getrandbits(128))}"]),
    "aws_example_key": lambda r: r.choice(["aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
                                           "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                                           'export AWS_ACCESS_KEY_ID="AKIAIOSFODNN7EXAMPLE"']),
    "env_read": lambda r: r.choice(['API_KEY = os.environ["API_KEY"]', 'password = os.getenv("DB_PASSWORD")',
                                    "const token = process.env.GITHUB_TOKEN;", 'SECRET_KEY = ENV.fetch("SECRET_KEY")',
                                    "export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY}",
                                    "  password: ${DB_PASSWORD}",
                                    'String apiKey = System.getenv("API_KEY");',
                                    "  token: ${{{{ secrets.GITHUB_TOKEN }}}}"]),
    "prompt_read": lambda r: r.choice(['password = getpass.getpass("Password: ")',
                                       'api_key = input("Enter your API key: ")',
                                       'read -s -p "Password: " PASSWORD',
                                       'const password = await prompt("Password:");',
                                       'password = click.prompt("Password", hide_input=True)']),
    "placeholder": lambda r: r.choice(['API_KEY = "your-api-key-here"', 'password: "<password>"',
                                       'token = "xxxxxxxxxxxxxxxxxxxxxxxx"',
                                       "STRIPE_KEY=sk_live_xxxxxxxxxxxxxxxxxxxxxxxx",
                                       'SECRET_KEY = "changeme"',
                                       "DATABASE_URL=postgres://user:password@localhost/db"]),
    "key_names": lambda r: r.choice(['primary_key = "user_id"', 'sort_key = "created_at"', 'TOKEN_TYPE = "Bearer"',
                                     'cache_key = "user:sessions:active"', 'i18n_key = "login.forgot_password"',
                                     '"password": "Passwort",', 'PASSWORD_FIELD = "password"', "key: value"]),
}


@dataclasses.dataclass(frozen=True)
class Item:
    doc: Document
    group: str
    """`pii` (a planted value that must go) or `lookalike` (a snippet that must stay)."""
    type: str
    value: str
    """The planted value, or the look-alike snippet."""
    start: int
    end: int
    """Character offsets of `value` in `doc.text`."""


def family(doc: Document) -> str:
    if doc.kind == "text":
        return "text"
    if doc.lang in ("Python", "Jupyter Notebook"):
        return "py"
    if doc.lang in ("Shell", "YAML", "Dockerfile", "INI", "TOML", "Makefile", "Markdown"):
        return "sh"
    return "c"


def load_documents(data: Path) -> list[Document]:
    """Real documents: every code file of the sample and the English and German web pages."""
    docs = []
    for i, r in enumerate(read_jsonl(data / "code" / "code_sample.jsonl.zst")):
        if r["lang"] in ("JSON", "Protocol Buffer", "SQL") or len(r["content"]) > 200_000:
            continue
        docs.append(Document(id=f"code/{i}", source="code", kind="code", text=r["content"], lang=r["lang"],
                             meta={"path": r["max_stars_repo_path"]}))
    for r in read_jsonl(data / "web" / "trafilatura_pages.main.jsonl.zst"):
        if r.get("lang") in ("en", "de") and len(r["text"]) > 500:
            docs.append(Document(id=f"web/{r['id']}", source="web", kind="text", text=r["text"], lang=r["lang"]))
    return docs


def _fill(template: str, rng: random.Random, value: str, fam: str, extra: dict[str, str]) -> tuple[str, int]:
    """The snippet, and where `value` starts in it."""
    first, last = _name(rng)
    fields = {"c": FAMILIES[fam], "n": f"{first.title()} {last.title()}", "u": rng.choice([first, "app", "admin"]),
              "h": rng.choice(HOSTS), "o": rng.choice(LAST), **extra}
    marker = "\x00VALUE\x00"
    snippet = template.replace("{{", "\x01").replace("}}", "\x02")
    for key, filler in fields.items():
        snippet = snippet.replace("{" + key + "}", filler)
    snippet = snippet.replace("{v}", marker).replace("{e}", marker)
    snippet = snippet.replace("\x01", "{").replace("\x02", "}")
    at = snippet.find(marker)
    return snippet.replace(marker, value, 1).replace(marker, value), at


def _insert(doc: Document, snippet: str, rng: random.Random) -> tuple[Document, int]:
    """The document with `snippet` on lines of its own at a random line boundary; where it starts."""
    text = doc.text
    cuts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
    at = rng.choice(cuts)
    block = snippet + "\n"
    return doc.replace(id=f"{doc.id}+{rng.getrandbits(32):08x}", text=text[:at] + block + text[at:]), at


def planted_set(data: Path, seed: int = 1, per_type: int = 40) -> list[Item]:
    rng = random.Random(seed)
    docs = load_documents(data)
    items: list[Item] = []
    for kind, gen in GENERATORS.items():
        for _ in range(per_type):
            doc = rng.choice(docs)
            fam = family(doc)
            value = gen(rng)
            template = rng.choice(contexts(kind)[fam])
            if kind == "private_key" and "{e}" in template:
                value = gen_pem(rng, escaped=True)
            snippet, offset = _fill(template, rng, value, fam, {})
            planted, at = _insert(doc, snippet, rng)
            items.append(Item(planted, "pii", kind, value, at + offset, at + offset + len(value)))
    for kind, make in LOOKALIKES.items():
        for _ in range(per_type):
            doc = rng.choice(docs)
            fam = family(doc)
            extra = {"p": _private_ip(rng), "ver": _version(rng)}
            snippet, _ = _fill(make(rng), rng, "", fam, extra)
            planted, at = _insert(doc, snippet, rng)
            items.append(Item(planted, "lookalike", kind, snippet, at, at + len(snippet)))
    return items
