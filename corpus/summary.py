"""The short summary a build ends with: per source documents and tokens, shards, the manifest's place."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table


def summary_rows(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    stages = manifest["accounting"]["stages"]
    read_in = {}
    for stage in ("normalize",):
        for group, entry in stages.get(stage, {}).items():
            read_in[group] = entry["in"]["docs"]
    kept = {g: e["out"]["docs"] for g, e in stages.get("tokenize", {}).items()}
    rows = []
    for name, src in manifest["mixture"]["sources"].items():
        rows.append({
            "source": name,
            "kind": src["kind"],
            "documents_read": read_in.get(name, 0),
            "documents_kept": kept.get(name, 0),
            "pool_tokens": src["pool_tokens"],
            "epochs": src["rate"],
            "tokens": src["realized_tokens"],
            "target_weight": src["weight"],
            "realized_weight": src["realized_weight"],
        })
    return rows


def print_summary(manifest: dict[str, Any], out_dir: str, seconds: float, as_json: bool = False) -> None:
    rows = summary_rows(manifest)
    totals = manifest["totals"]
    ratio = manifest["mixture"]["code_text_ratio"]
    if as_json:
        json.dump({"sources": rows, "totals": totals, "code_text_ratio": ratio, "out": out_dir,
                   "seconds": round(seconds, 1)}, sys.stdout, indent=2)
        print()
        return
    console = Console(width=max(Console().width, 118))
    table = Table(title=f"build {manifest['build']['name']}: {out_dir}")
    for col in ("source", "kind", "docs in", "docs kept", "pool tokens", "epochs", "tokens out",
                "target", "realized"):
        table.add_column(col, justify="left" if col in ("source", "kind") else "right")
    for r in rows:
        table.add_row(r["source"], r["kind"], f"{r['documents_read']:,}", f"{r['documents_kept']:,}",
                      f"{r['pool_tokens']:,}", f"{r['epochs']:.3f}", f"{r['tokens']:,}",
                      f"{100 * r['target_weight']:.2f}%", f"{100 * r['realized_weight']:.2f}%")
    console.print(table)
    realized = ratio["realized"]
    console.print(
        f"{totals['shards']} shards, {totals['documents']:,} documents, {totals['tokens']:,} tokens; "
        f"code:text {realized:.3f}:1 (target {ratio['target']:.3f}:1); "
        + ", ".join(f"{n:,} sequences of {length}" for length, n in totals["sequences"].items())
        if realized is not None else f"{totals['shards']} shards, {totals['tokens']:,} tokens"
    )
    console.print(f"manifest: {out_dir.rstrip('/')}/manifest.json  ({seconds:.0f} s)")
