"""The short summary a build ends with: per source documents and tokens, shards, the manifest's place."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

STATUS_NOTES = {
    "mixed": "written to its target",
    "empty": "no tokens left after filtering and dedup",
    "below_min_pool": "fewer tokens than mixture.min_pool_tokens: counted as empty",
    "redistributed": "its weight went to the other sources of its kind",
}
"""What each source status means (the audit names them the same way)."""


def summary_rows(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    stages = manifest["accounting"]["stages"]
    read_in = {group: entry["in"]["docs"] for group, entry in stages.get("normalize", {}).items()}
    kept = {g: e["out"]["docs"] for g, e in stages.get("tokenize", {}).items()}
    redistributed = manifest["mixture"].get("redistributed", {})
    rows = []
    for name, src in manifest["mixture"]["sources"].items():
        status = src.get("status", "mixed")
        rows.append({
            "source": name,
            "kind": src["kind"],
            "status": "redistributed" if name in redistributed and status == "mixed" else status,
            "documents_read": read_in.get(name, 0),
            "documents_kept": kept.get(name, 0),
            "pool_tokens": src["pool_tokens"],
            "pool_tokens_lower_bound": bool(src.get("untokenized_documents")),  # mixture.tokenize: sampled
            "planned_epochs": src["rate"],
            "realized_epochs": src.get("realized_epochs", 0.0),
            "reference_epochs": src.get("reference_epochs"),
            "tokens": src["realized_tokens"],
            "configured_weight": src.get("configured_weight", src["weight"]),
            "target_weight": src["weight"],
            "realized_weight": src["realized_weight"],
        })
    return rows


def bad_records(manifest: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Per input, the records the read stage could not turn into documents, by reason."""
    return {group: {reason: d["docs"] for reason, d in sorted(entry["dropped"].items())}
            for group, entry in sorted(manifest["accounting"]["stages"].get("read", {}).items()) if entry["dropped"]}


def print_summary(manifest: dict[str, Any], out_dir: str, seconds: float, as_json: bool = False) -> None:
    rows = summary_rows(manifest)
    totals = manifest["totals"]
    ratio = manifest["mixture"]["code_text_ratio"]
    bad = bad_records(manifest)
    if as_json:
        json.dump({"sources": rows, "bad_records": bad, "totals": totals, "code_text_ratio": ratio, "out": out_dir,
                   "seconds": round(seconds, 1),
                   **({"variants": manifest["variants"]} if "variants" in manifest else {})},
                  sys.stdout, indent=2)
        print()
        return
    console = Console(width=max(Console().width, 132))
    table = Table(title=f"build {manifest['build']['name']}: {out_dir}",
                  caption="weight: configured -> after redistribution (target) -> measured in the shards; "
                  "epochs: planned -> realized; paper: the epochs Lemur's Table 8 reports")
    for col in ("source", "kind", "status", "docs in", "docs kept", "pool tokens", "epochs", "paper", "tokens out",
                "weight"):
        table.add_column(col, justify="left" if col in ("source", "kind", "status") else "right")
    contributing = [r for r in rows if r["tokens"] or r["documents_read"]]
    absent = [r for r in rows if r not in contributing]
    for r in contributing:
        table.add_row(r["source"], r["kind"], r["status"], f"{r['documents_read']:,}", f"{r['documents_kept']:,}",
                      f"{'>=' if r['pool_tokens_lower_bound'] else ''}{r['pool_tokens']:,}",
                      f"{r['planned_epochs']:.3f} -> {r['realized_epochs']:.3f}",
                      "" if r["reference_epochs"] is None else f"{r['reference_epochs']:g}", f"{r['tokens']:,}",
                      f"{100 * r['configured_weight']:.2f} -> {100 * r['target_weight']:.2f} -> "
                      f"{100 * r['realized_weight']:.2f}%")
    console.print(table)
    if absent:
        console.print(f"no documents for {len(absent)} sources ({', '.join(r['source'] for r in absent)})")
    for source, shares in sorted(manifest["mixture"].get("redistributed", {}).items()):
        given = ", ".join(f"{to} +{100 * share:.2f}%" for to, share in sorted(shares.items()))
        console.print(f"  {source}'s weight went to {given}")
    for status in sorted({r["status"] for r in contributing} - {"mixed"}):
        names = ", ".join(r["source"] for r in contributing if r["status"] == status)
        console.print(f"{status}: {names} ({STATUS_NOTES.get(status, status)})")
    for group, reasons in bad.items():
        listing = ", ".join(f"{n:,} {reason}" for reason, n in reasons.items())
        console.print(f"[yellow]input {group}: {sum(reasons.values()):,} records were not documents ({listing}); "
                      f"each is in the drop log with its file and line[/yellow]")
    realized = ratio["realized"]
    console.print(
        f"{totals['shards']} shards, {totals['documents']:,} documents, {totals['tokens']:,} tokens; "
        f"code:text {realized:.3f}:1 (target {ratio['target']:.3f}:1); "
        + ", ".join(f"{n:,} sequences of {length}" for length, n in totals["sequences"].items())
        if realized is not None else f"{totals['shards']} shards, {totals['tokens']:,} tokens"
    )
    for variant in manifest.get("variants") or []:
        cost, vratio = variant["bytes"], variant["code_text_ratio"]
        shown = "-" if vratio["realized"] is None else f"{vratio['realized']:.3f}:1 (target {vratio['target']:.3f}:1)"
        console.print(f"variant {variant['name']}: {out_dir.rstrip('/')}/{variant['path']}: "
                      f"{variant['shards']} shards, "
                      f"{variant['tokens']:,} tokens, code:text {shown}; {cost['index_bytes']:,} index bytes written, "
                      f"{cost['linked_bin_bytes']:,} .bin bytes shared by hard link"
                      + (f", {cost['copied_bin_bytes']:,} copied" if cost["copied_bin_bytes"] else ""), highlight=False)
    console.print(f"manifest: {out_dir.rstrip('/')}/manifest.json  ({seconds:.0f} s)")
