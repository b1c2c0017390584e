"""`corpus manifests regenerate|diff`: the index of builds under `manifests/`, and what changed between two.

`regenerate` audits each build folder it is given (re-measuring its shards), stores its manifest and the
audit's verdict under `<root>/<id>/`, and rebuilds `<root>/index.json` from everything stored there. A
build's id is its name plus a hash of its non-volatile manifest, so the same build registered twice is
one row, and the index is byte-identical however often it is regenerated. `diff` compares two builds
(folders, manifest files or ids under the root): config keys, inputs, tokenizer, counts per stage,
source and drop reason, dedup statistics, tokens and weights per source, totals.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from lemur_corpus.errors import ConfigError, CorpusError

INDEX_NAME = "index.json"
AUDIT_NAME = "audit.json"
INDEX_VERSION = 1
DEFAULT_ROOT = "manifests"
LISTED_PATHS = 5
"""Changed input paths listed by name in a diff (the rest are counted)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "manifests",
        help="the index of builds under manifests/ (regenerate) and what changed between two builds (diff)",
        description="Keep the committed record of builds: `regenerate` audits the given build folders, stores "
        "their manifests under the root and rebuilds index.json; `diff` says what changed between two builds.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    regen = actions.add_parser(
        "regenerate",
        help="audit build folders, store their manifests and rebuild <root>/index.json (idempotent)",
        description="Audit each BUILD folder (re-reading its shards), store its manifest and audit verdict "
        "under <root>/<id>/ and rebuild <root>/index.json from every build stored there: one row per build "
        "(id, date, config hash, tokens, realized code:text ratio, audit status). With no BUILD, re-checks the "
        "stored manifests and rebuilds the index only. Running it again with the same folders changes nothing.",
    )
    regen.add_argument("builds", nargs="*", metavar="BUILD", help="finished build folders to register")
    regen.add_argument("--root", default=DEFAULT_ROOT, metavar="DIR",
                       help=f"the manifests folder (default: {DEFAULT_ROOT}/)")
    regen.add_argument("--prune", action="store_true",
                       help="remove stored builds that are not among the BUILD folders given (keep only these); "
                       "nothing is removed unless every BUILD registers")
    regen.add_argument("--tolerance", type=float, default=None, metavar="X",
                       help="weight tolerance of the audits, as in `corpus audit` (default 0.001)")
    regen.add_argument("--json", action="store_true", help="print the index as JSON instead of a table")
    regen.set_defaults(func=run_regenerate)
    diff = actions.add_parser(
        "diff",
        help="what changed between two builds: inputs, counts per source and reason, weights",
        description="Compare two builds, each given as a build folder, a manifest.json file, or an id stored "
        "under --root: config keys, inputs (files, bytes, listing hash, paths added and removed), tokenizer, "
        "documents per stage and source, drops per reason, dedup statistics, tokens and weights per source, "
        "totals. The run section (times, runner) is left out.",
    )
    diff.add_argument("a", metavar="A", help="the earlier build (folder, manifest file or stored id)")
    diff.add_argument("b", metavar="B", help="the later build (folder, manifest file or stored id)")
    diff.add_argument("--root", default=DEFAULT_ROOT, metavar="DIR",
                      help=f"where stored ids are looked up (default: {DEFAULT_ROOT}/)")
    diff.add_argument("--json", action="store_true", help="print the differences as JSON")
    diff.set_defaults(func=run_diff)


# ---------------------------------------------------------------------------------------------
# Ids, rows and the index


def build_id(manifest: dict[str, Any]) -> str:
    """`<name>-<12 hex>`: a hash of the manifest without its volatile sections (same build, same id)."""
    from lemur_corpus.manifest import dumps, without_volatile

    digest = hashlib.sha256(dumps(without_volatile(manifest))).hexdigest()[:12]
    return f"{(manifest.get('build') or {}).get('name', 'build')}-{digest}"


def index_row(build: str, manifest: dict[str, Any], audit: dict[str, Any] | None,
              problems: list[str]) -> dict[str, Any]:
    """One row of index.json, from a stored manifest, its stored audit verdict and the re-check's problems."""
    mixture = manifest.get("mixture") or {}
    ratio = mixture.get("code_text_ratio") or {}
    totals = manifest.get("totals") or {}
    if problems:
        status = "invalid"
    elif audit is None:
        status = "not audited"
    else:
        status = "passed" if audit.get("ok") else "failed"
    return {
        "id": build,
        "name": (manifest.get("build") or {}).get("name"),
        "date": (manifest.get("run") or {}).get("finished"),
        "config_hash": (manifest.get("build") or {}).get("config_hash"),
        "schema_version": manifest.get("schema_version"),
        "git_commit": (manifest.get("code") or {}).get("git_commit"),
        "tokens": totals.get("tokens"),
        "documents": totals.get("documents"),
        "shards": totals.get("shards"),
        "code_text_ratio": ratio.get("realized"),
        "target_code_text_ratio": ratio.get("target"),
        "audit": status,
        "mismatches": len(problems) if problems else len((audit or {}).get("mismatches", [])),
        "manifest": f"{build}/manifest.json",
    }


def recheck(manifest: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """What can be checked of a stored manifest without its shards: version (migrated), schema, accounting."""
    from lemur_corpus.audit import ManifestVersionError, accounting_problems, migrate
    from lemur_corpus.manifest import schema_problems

    try:
        manifest, _ = migrate(manifest)
    except ManifestVersionError as exc:
        return manifest, [str(exc)]
    return manifest, [f"manifest schema: {p}" for p in schema_problems(manifest)] + accounting_problems(manifest)


def _read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _write_json(path: str, data: Any) -> None:
    from lemur_corpus.io import write_atomic

    write_atomic(path, (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8"))


def stored_builds(root: str) -> list[str]:
    return sorted(name for name in os.listdir(root) if os.path.isfile(os.path.join(root, name, "manifest.json")))


def build_index(root: str) -> dict[str, Any]:
    """index.json's content from every build stored under `root` (nothing else: idempotent)."""
    rows = []
    for build in stored_builds(root):
        folder = os.path.join(root, build)
        try:
            manifest = _read_json(os.path.join(folder, "manifest.json"))
        except (OSError, ValueError) as exc:
            rows.append({"id": build, "audit": "invalid", "problems": [f"manifest.json unreadable: {exc}"],
                         "manifest": f"{build}/manifest.json"})
            continue
        audit_path = os.path.join(folder, AUDIT_NAME)
        audit = _read_json(audit_path) if os.path.isfile(audit_path) else None
        manifest, problems = recheck(manifest)
        row = index_row(build, manifest, audit, problems)
        if problems:
            row["problems"] = problems
        rows.append(row)
    rows.sort(key=lambda r: (str(r.get("date") or ""), r["id"]))
    return {"index_version": INDEX_VERSION, "builds": rows}


def store_build(root: str, build_dir: str, tolerance: float | None) -> tuple[str, dict[str, Any]]:
    """Audit a build folder and store its manifest (byte for byte) and the verdict under `<root>/<id>/`."""
    from lemur_corpus.audit import DEFAULT_TOLERANCE, audit_build
    from lemur_corpus.io import read_bytes, write_atomic
    from lemur_corpus.manifest import MANIFEST_NAME

    result = audit_build(build_dir, tolerance=DEFAULT_TOLERANCE if tolerance is None else tolerance)
    build = build_id(result.manifest)
    folder = os.path.join(root, build)
    os.makedirs(folder, exist_ok=True)
    raw = read_bytes(os.path.join(build_dir, MANIFEST_NAME))
    target = os.path.join(folder, "manifest.json")
    if not os.path.isfile(target) or Path(target).read_bytes() != raw:
        write_atomic(target, raw)
    verdict = {"ok": result.ok, "tolerance": result.tolerance, "mismatches": result.mismatches,
               "total_tokens": result.total_tokens, "code_text_ratio": result.code_text_ratio}
    _write_json(os.path.join(folder, AUDIT_NAME), verdict)
    return build, verdict


def regenerate(root: str, build_dirs: list[str], *, tolerance: float | None = None,
               prune: bool = False) -> tuple[dict[str, Any], list[str]]:
    """(the index written to `<root>/index.json`, problems of the given build folders: those that could
    not be registered, and those whose audit failed). Builds stored earlier never make it fail: their
    status is in the index."""
    import shutil

    os.makedirs(root, exist_ok=True)
    registered, errors = [], []
    for build_dir in build_dirs:
        try:
            build, verdict = store_build(root, build_dir, tolerance)
        except CorpusError as exc:
            errors.append(f"{build_dir}: {exc}")
            continue
        registered.append(build)
        if not verdict["ok"]:
            errors.append(f"{build_dir}: its audit failed ({len(verdict['mismatches'])} mismatch(es); "
                          f"`corpus audit {build_dir}` lists them)")
    if prune and len(registered) == len(build_dirs):
        for build in stored_builds(root):
            if build not in registered:
                shutil.rmtree(os.path.join(root, build))
    index = build_index(root)
    _write_json(os.path.join(root, INDEX_NAME), index)
    return index, errors


def run_regenerate(args: argparse.Namespace) -> int:
    if args.tolerance is not None and not 0 <= args.tolerance < 1:
        raise ConfigError(f"--tolerance must be a fraction in [0, 1), got {args.tolerance:g}")
    if os.path.exists(args.root) and not os.path.isdir(args.root):
        raise ConfigError(f"--root {args.root} is not a folder")
    if args.prune and not args.builds:
        raise ConfigError("--prune needs the BUILD folders to keep")
    for build_dir in args.builds:
        if not os.path.isdir(build_dir) and "://" not in build_dir:
            raise ConfigError(f"{build_dir}: no such build folder")
    index, errors = regenerate(args.root, args.builds, tolerance=args.tolerance, prune=args.prune)
    if args.json:
        json.dump(index, sys.stdout, indent=2, sort_keys=True)
        print()
    else:
        _print_index(index, args.root)
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if errors else 0


def _print_index(index: dict[str, Any], root: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{root.rstrip('/')}/{INDEX_NAME}: {len(index['builds'])} build(s)")
    for col in ("id", "date", "config hash", "tokens", "code:text", "audit"):
        table.add_column(col, justify="right" if col in ("tokens", "code:text") else "left")
    for row in index["builds"]:
        ratio = row.get("code_text_ratio")
        audit = row["audit"] + (f" ({row['mismatches']})" if row.get("mismatches") else "")
        table.add_row(row["id"], str(row.get("date") or "-"), str(row.get("config_hash") or "-")[:12],
                      f"{row['tokens']:,}" if isinstance(row.get("tokens"), int) else "-",
                      f"{ratio:.3f}" if isinstance(ratio, (int, float)) else "-", audit)
    Console(width=max(Console().width, 110)).print(table)


# ---------------------------------------------------------------------------------------------
# Diff


def load_any(ref: str, root: str) -> tuple[str, dict[str, Any]]:
    """(label, manifest at the current schema) of a build folder, a manifest file, or an id under `root`."""
    from lemur_corpus.audit import load_build_manifest, migrate

    if os.path.isfile(ref):
        try:
            manifest = _read_json(ref)
        except ValueError as exc:
            raise CorpusError(f"{ref}: not valid JSON ({exc})") from None
        return ref, migrate(manifest, ref)[0]
    if os.path.isdir(ref) or "://" in ref:
        return ref, load_build_manifest(ref)[0]
    stored = os.path.join(root, ref, "manifest.json")
    if os.path.isfile(stored):
        return ref, migrate(_read_json(stored), stored)[0]
    known = ", ".join(stored_builds(root)) if os.path.isdir(root) else "none"
    raise ConfigError(f"{ref}: not a build folder, a manifest file, or a build id under {root}/ (known: {known})")


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys of nested mappings, the unit a config diff is reported in. Lists of named mappings
    (inputs) are keyed by name, `inputs[local].paths`; other lists stay whole."""
    if isinstance(value, list) and value and all(isinstance(v, dict) and "name" in v for v in value):
        value = {f"[{v['name']}]": v for v in value}
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}{key}"))
        return out
    if isinstance(value, dict) and value:
        out = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def changed(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "a": a.get(k), "b": b.get(k)} for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _inputs_diff(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_a = {i.get("name"): i for i in a}
    by_b = {i.get("name"): i for i in b}
    rows = []
    for name in sorted(set(by_a) | set(by_b), key=str):
        ia, ib = by_a.get(name, {}), by_b.get(name, {})
        paths_a = {p["path"]: p.get("bytes") for p in ia.get("paths", [])}
        paths_b = {p["path"]: p.get("bytes") for p in ib.get("paths", [])}
        added = sorted(set(paths_b) - set(paths_a))
        removed = sorted(set(paths_a) - set(paths_b))
        resized = sorted(p for p in set(paths_a) & set(paths_b) if paths_a[p] != paths_b[p])
        fields = changed({k: ia.get(k) for k in ("format", "kind", "files", "bytes", "listing_sha256")},
                         {k: ib.get(k) for k in ("format", "kind", "files", "bytes", "listing_sha256")})
        if fields or added or removed or resized or not ia or not ib:
            rows.append({"input": name, "status": "added" if not ia else "removed" if not ib else "changed",
                         "fields": fields, "paths_added": len(added), "paths_removed": len(removed),
                         "paths_resized": len(resized), "examples_added": added[:LISTED_PATHS],
                         "examples_removed": removed[:LISTED_PATHS], "examples_resized": resized[:LISTED_PATHS]})
    return rows


def _counts(manifest: dict[str, Any]) -> dict[str, int]:
    """`stage/group in|out` and `stage/group dropped:reason` document counts."""
    out = {}
    for stage, groups in ((manifest.get("accounting") or {}).get("stages") or {}).items():
        for group, entry in groups.items():
            out[f"{stage}/{group} in"] = entry["in"]["docs"]
            out[f"{stage}/{group} out"] = entry["out"]["docs"]
            for reason, d in entry.get("dropped", {}).items():
                out[f"{stage}/{group} dropped:{reason}"] = d["docs"]
    return out


def _sources(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    fields = ("kind", "status", "pool_tokens", "pool_documents", "target_tokens", "realized_tokens",
              "realized_documents", "weight", "realized_weight", "rate", "realized_epochs")
    return {s: {f: p.get(f) for f in fields} for s, p in ((manifest.get("mixture") or {}).get("sources") or {}).items()}


def _mixture_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """The mixture as a whole: N, how it was chosen, code:text; which variant of which build this is."""
    mixture = manifest.get("mixture") or {}
    ratio = mixture.get("code_text_ratio") or {}
    variant = manifest.get("variant") or {}
    return {"total_tokens": mixture.get("total_tokens"), "total_from": mixture.get("total_from"),
            "binding_source": mixture.get("binding_source"), "code_text_ratio target": ratio.get("target"),
            "code_text_ratio realized": ratio.get("realized"),
            "realized_total_tokens": mixture.get("realized_total_tokens"),
            "variant": variant.get("name"), "variant of": (variant.get("of") or {}).get("config_hash")}


def diff_manifests(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Everything that differs between two manifests, section by section (deltas where numeric)."""
    sources_a, sources_b = _sources(a), _sources(b)
    source_rows = []
    for name in sorted(set(sources_a) | set(sources_b)):
        sa, sb = sources_a.get(name, {}), sources_b.get(name, {})
        if sa != sb:
            keys = ("realized_tokens", "weight", "realized_weight", "pool_tokens", "realized_epochs")
            source_rows.append({"source": name, **{f"{k}_a": sa.get(k) for k in keys},
                                **{f"{k}_b": sb.get(k) for k in keys}})
    counts = [dict(row, delta=(row["b"] or 0) - (row["a"] or 0)) for row in changed(_counts(a), _counts(b))]
    return {
        "a": {"id": build_id(a), "date": (a.get("run") or {}).get("finished"),
              "config_hash": (a.get("build") or {}).get("config_hash")},
        "b": {"id": build_id(b), "date": (b.get("run") or {}).get("finished"),
              "config_hash": (b.get("build") or {}).get("config_hash")},
        "same_build": build_id(a) == build_id(b),
        "code": changed(flatten(a.get("code") or {}), flatten(b.get("code") or {})),
        "config": changed(flatten(a.get("config") or {}), flatten(b.get("config") or {})),
        "inputs": _inputs_diff(a.get("inputs") or [], b.get("inputs") or []),
        "tokenizer": changed(a.get("tokenizer") or {}, b.get("tokenizer") or {}),
        "counts": counts,
        "dedup": changed(flatten(a.get("dedup") or {}), flatten(b.get("dedup") or {})),
        "filter_edits": changed(flatten(a.get("filter_edits") or {}), flatten(b.get("filter_edits") or {})),
        "sources": source_rows,
        "mixture": changed(_mixture_summary(a), _mixture_summary(b)),
        "totals": changed(flatten(a.get("totals") or {}), flatten(b.get("totals") or {})),
    }


def run_diff(args: argparse.Namespace) -> int:
    label_a, a = load_any(args.a, args.root)
    label_b, b = load_any(args.b, args.root)
    result = diff_manifests(a, b)
    if args.json:
        json.dump(result, sys.stdout, indent=2, sort_keys=True)
        print()
    else:
        _print_diff(result, label_a, label_b)
    return 0


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def _pct(value: Any) -> str:
    return f"{100 * value:.3f}%" if isinstance(value, (int, float)) else "-"


def _epochs(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "-"


def _print_diff(result: dict[str, Any], label_a: str, label_b: str) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(width=max(Console().width, 120))
    console.print(f"A: {label_a}  ({result['a']['id']}, {result['a']['date']})", highlight=False)
    console.print(f"B: {label_b}  ({result['b']['id']}, {result['b']['date']})", highlight=False)
    if result["same_build"]:
        console.print("the same build: the manifests differ only in their run section (times, runner)")
        return

    def table(title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
        if not rows:
            return
        t = Table(title=title)
        for i, col in enumerate(columns):
            t.add_column(col, justify="left" if i == 0 else "right")
        for row in rows:
            t.add_row(*(Text(cell) for cell in row))  # keys like inputs[local] are not markup
        console.print(t)

    for section in ("code", "config", "tokenizer", "dedup", "filter_edits", "mixture", "totals"):
        table(f"{section}: {len(result[section])} change(s)", ("key", "A", "B"),
              [(r["key"], _fmt(r["a"]), _fmt(r["b"])) for r in result[section]])
    table("inputs", ("input", "status", "changed fields", "paths +", "paths -", "resized"),
          [(r["input"], r["status"], ", ".join(f["key"] for f in r["fields"]) or "-", f"{r['paths_added']:,}",
            f"{r['paths_removed']:,}", f"{r['paths_resized']:,}") for r in result["inputs"]])
    table("documents per stage, source and drop reason", ("stage/group count", "A", "B", "Δ"),
          [(r["key"], _fmt(r["a"]), _fmt(r["b"]), f"{r['delta']:+,}") for r in result["counts"]])
    table("sources: tokens, weights and epochs side by side",
          ("source", "tokens A", "tokens B", "target A", "target B", "realized A", "realized B", "epochs A",
           "epochs B"),
          [(r["source"], _fmt(r["realized_tokens_a"]), _fmt(r["realized_tokens_b"]), _pct(r["weight_a"]),
            _pct(r["weight_b"]), _pct(r["realized_weight_a"]), _pct(r["realized_weight_b"]),
            _epochs(r.get("realized_epochs_a")), _epochs(r.get("realized_epochs_b")))
           for r in result["sources"]])
