"""`corpus audit BUILD`: re-measure a build's shards against its manifest and its mixture targets.

Exit status: 0 when everything holds, 1 when anything does not (every mismatch is listed), 2 when there
is nothing to audit (no such folder, an unfinished or failed build, an unreadable manifest version).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from lemur_corpus.errors import ConfigError

TOLERANCE_HELP = "0.001 = 0.1 percentage point"
"""The default of --tolerance in words; `lemur_corpus.audit.DEFAULT_TOLERANCE` is the value (a test keeps
them equal: importing the audit engine here would make every `corpus --help` load Beam)."""


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit",
        help="re-measure a build's shards against its manifest and mixture targets",
        description="Re-read every shard (.bin, .idx, .docs.jsonl.zst) of a finished build, recompute token "
        "and document counts, sha256, per-source tokens and weights and the code:text ratio, re-check the "
        "accounting invariants and the drop log, and compare all of it with the manifest and with the targets "
        "of the config. Exit 0 when everything holds, 1 with the list of every mismatch otherwise, 2 when the "
        "folder holds no finished build.",
    )
    p.add_argument("build", metavar="BUILD", help="the build folder (holding manifest.json and shards/)")
    p.add_argument("--json", action="store_true",
                   help="print the result as JSON (keys ok, total_tokens, total_documents, code_text_ratio, "
                   "sources, mismatches, ...) instead of tables")
    p.add_argument("--report", metavar="FILE.html",
                   help="also write a self-contained HTML report with charts (weights, drop funnel, dedup "
                   "clusters, document lengths)")
    p.add_argument("--tolerance", type=float, default=None, metavar="X",
                   help="largest accepted |realized - target| weight of a source, as a fraction of all tokens "
                   f"(default {TOLERANCE_HELP}); a source within one document of its target always passes")
    p.add_argument("--config", metavar="FILE",
                   help="take the targets from this config instead of the config the build recorded "
                   "(e.g. the mixture a schedule intends)")
    p.add_argument("--workers", type=int, default=default_workers(), metavar="N",
                   help=f"shards re-read in parallel (default {default_workers()})")
    p.set_defaults(func=run)


def _validate(args: argparse.Namespace) -> None:
    if args.tolerance is not None and not 0 <= args.tolerance < 1:
        raise ConfigError(f"--tolerance must be a fraction in [0, 1), got {args.tolerance:g}")
    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    if args.report and not args.report.lower().endswith((".html", ".htm")):
        raise ConfigError(f"--report must name an .html file, got {args.report}")


def run(args: argparse.Namespace) -> int:
    _validate(args)
    from rich.console import Console

    from lemur_corpus.audit import DEFAULT_TOLERANCE, audit_build

    target_config = None
    if args.config:
        from lemur_corpus.config import load_config

        target_config = load_config(args.config).resolved()
    err = Console(stderr=True)
    with err.status("re-reading shards…") as status:
        tolerance = DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance
        result = audit_build(args.build, tolerance=tolerance, config=target_config,
                             config_origin=args.config or "", workers=args.workers,
                             progress=lambda name: status.update(f"re-read {name}"))
    if args.report:
        from lemur_corpus.report import write_report

        write_report(result, args.report)
    if args.json:
        json.dump(result.to_json(), sys.stdout, indent=2, sort_keys=True)
        print()
    else:
        print_result(result.to_json(), Console(width=max(Console().width, 120)))
    if args.report:
        err.print(f"report: {args.report}")
    return 0 if result.ok else 1


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.3f}%"


def print_result(data: dict[str, Any], console: Any) -> None:
    """Rich tables: sources (target vs realized), then every mismatch, then the verdict."""
    from rich.table import Table

    build = data["build"]
    table = Table(title=f"audit of {build['name']} ({data['build_dir']}), targets from {data['targets_from']}")
    for col in ("source", "kind", "status", "tokens", "documents", "distinct", "epochs", "paper", "target",
                "realized", "Δ points"):
        table.add_column(col, justify="left" if col in ("source", "kind", "status") else "right")
    for s in data["sources"]:
        delta = 100 * (s["realized_weight"] - s["target_weight"])
        table.add_row(s["name"], s["kind"], s["status"], f"{s['tokens']:,}", f"{s['documents']:,}",
                      f"{s['unique_documents']:,}", f"{s['planned_epochs']:.3f} -> {s['realized_epochs']:.3f}",
                      "-" if s.get("reference_epochs") is None else f"{s['reference_epochs']:g}",
                      _pct(s["target_weight"]),
                      _pct(s["realized_weight"]), f"{delta:+.3f}")
    console.print(table)
    ratio, target = data["code_text_ratio"], data["target_code_text_ratio"]
    console.print(
        f"{data['total_shards']} shards, {data['total_documents']:,} documents, {data['total_tokens']:,} tokens; "
        f"code:text {'-' if ratio is None else f'{ratio:.3f}'}:1 "
        f"(target {'-' if target is None else f'{target:.3f}'}:1)")
    if data.get("contamination"):
        print_contamination(data["contamination"], console)
    for note in data["notes"]:
        console.print(f"[yellow]note:[/] {note}", markup=True, highlight=False)
    if data["ok"]:
        console.print(f"[bold green]audit passed[/]: shards, manifest and targets agree (tolerance "
                      f"{100 * data['tolerance']:g} points)", markup=True)
        return
    console.print(f"[bold red]audit FAILED[/]: {len(data['mismatches'])} mismatch(es)", markup=True)
    for line in data["mismatches"]:
        console.print(f"  - {line}", markup=False, highlight=False)


def print_contamination(rows: list[dict[str, Any]], console: Any) -> None:
    """Per benchmark: items indexed and found, documents holding them, what dropped them, where from."""
    from rich.table import Table

    table = Table(title="contamination (decontam filter): benchmark items found in the inputs")
    for col in ("benchmark", "items", "found", "documents", "dropped", "dropped anyway", "sources", "most found"):
        table.add_column(col, justify="left" if col in ("benchmark", "sources", "most found") else "right")
    for row in rows:
        sources = ", ".join(f"{s} {n:,}" for s, n in row["by_source"].items()) or "-"
        top = ", ".join(f"{t['item']} ({t['documents']})" for t in row["top_items"][:3]) or "-"
        table.add_row(row["benchmark"], f"{row['items']:,}", f"{row['items_matched']:,}", f"{row['documents']:,}",
                      f"{row['dropped']:,}", f"{row['dropped_by_other_filters']:,}", sources, top)
    console.print(table)
