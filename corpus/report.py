"""The audit as one self-contained HTML page people can open anywhere (`corpus audit --report F.html`).

Charts are matplotlib figures inlined as SVG (no scripts, no external files, text stays text): target
vs realized weight per source with the deviation against the tolerance, the drop funnel per stage and
reason, the dedup cluster-size histogram, the benchmark items the `decontam` filter found (per
benchmark: documents dropped by it or by another filter first), and document lengths per source from
the shards' docs index.
The page is deterministic for the same build (fixed SVG ids, no timestamps of its own).
"""

from __future__ import annotations

import html
import io
import json
import math
import re
from collections.abc import Iterable
from typing import Any

import numpy as np

from lemur_corpus.accounting import STAGES
from lemur_corpus.audit import AuditResult, SourceAudit
from lemur_corpus.errors import CorpusError
from lemur_corpus.filters.pii.config import PII_TYPES
from lemur_corpus.io import join, read_bytes, write_atomic
from lemur_corpus.manifest import CLUSTER_SIZE_METRIC

TARGET_COLOR = "#9aa5b1"
REALIZED_COLOR = "#1f6feb"
KEPT_COLOR = "#2da44e"
FAIL_COLOR = "#cf222e"
LENGTH_COLUMNS = 3
LOG_SCALE_ABOVE = 100
"""Cluster counts this large get a log axis (clusters of 2 usually outnumber the rest by far)."""


# ---------------------------------------------------------------------------------------------
# Chart data (pure)


def ordered_stages(stages: dict[str, Any]) -> list[str]:
    """Pipeline order (the manifest's JSON sorts keys); unknown stages last, by name."""
    return [s for s in STAGES if s in stages] + sorted(set(stages) - set(STAGES))


def funnel_rows(stages: dict[str, dict[str, Any]]) -> list[tuple[str, int, dict[str, int]]]:
    """(stage, documents out, {reason: documents dropped}) per stage in pipeline order, summed over groups."""
    rows = []
    for stage in ordered_stages(stages):
        groups = stages[stage]
        out = sum(int(e["out"]["docs"]) for e in groups.values())
        dropped: dict[str, int] = {}
        for entry in groups.values():
            for reason, d in entry.get("dropped", {}).items():
                dropped[reason] = dropped.get(reason, 0) + int(d["docs"])
        rows.append((stage, out, dict(sorted(dropped.items(), key=lambda kv: (-kv[1], kv[0])))))
    return rows


def cluster_histograms(dedup: dict[str, Any]) -> dict[str, dict[int, int]]:
    """`section/group` -> {upper bound of cluster size: clusters}, from `cluster_size_le_<N>` metrics
    (read defensively: other metrics and malformed names are ignored)."""
    out: dict[str, dict[int, int]] = {}
    for section, groups in (dedup or {}).items():
        if not isinstance(groups, dict):
            continue
        for group, metrics in groups.items():
            if not isinstance(metrics, dict):
                continue
            for metric, value in metrics.items():
                match = re.fullmatch(re.escape(CLUSTER_SIZE_METRIC) + r"(\d+)", str(metric))
                if match and isinstance(value, (int, float)) and value > 0:
                    out.setdefault(f"{section}/{group}", {})[int(match.group(1))] = int(value)
    return {k: dict(sorted(v.items())) for k, v in sorted(out.items())}


def bucket_label(bound: int) -> str:
    low = bound // 2 + 1
    return str(bound) if low >= bound else f"{low}–{bound}"


# ---------------------------------------------------------------------------------------------
# Charts (matplotlib → inline SVG)


def _svg(fig: Any) -> str:
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "lemur-corpus"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})  # constrained layout sets the margins
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    fig.set_layout_engine("constrained")
    return fig


def weights_chart(sources: list[SourceAudit], tolerance: float) -> str:
    from matplotlib.ticker import MaxNLocator

    shown = [s for s in sources if s.target_weight > 0 or s.realized_weight > 0 or s.configured_weight > 0]
    shown.sort(key=lambda s: (-max(s.target_weight, s.realized_weight), s.name))
    fig = _figure(11, 0.42 * len(shown) + 1.6)
    ax, dev = fig.subplots(1, 2, width_ratios=[3, 2], sharey=True)
    y = np.arange(len(shown))
    target = np.array([100 * s.target_weight for s in shown])
    realized = np.array([100 * s.realized_weight for s in shown])
    configured = np.array([100 * s.configured_weight for s in shown])
    ax.barh(y - 0.2, target, 0.4, color=TARGET_COLOR, label="target (after redistribution)")
    ax.barh(y + 0.2, realized, 0.4, color=REALIZED_COLOR, label="realized (measured in the shards)")
    ax.scatter(configured, y - 0.2, marker="|", s=160, color="black", label="configured weight", zorder=3)
    for i, (t, r) in enumerate(zip(target, realized, strict=True)):
        ax.text(max(t, r) + 0.01 * max(realized.max(initial=1), 1), i, f"{r:.2f}% / {t:.2f}%", va="center", fontsize=8)
    ax.set_yticks(y, [s.name for s in shown])
    ax.invert_yaxis()
    ax.set_xlabel("share of all tokens (%) — labels: realized / target")
    ax.set_xlim(0, max(target.max(initial=1), realized.max(initial=1)) * 1.25)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Target vs realized weight per source")
    delta = realized - target
    band = 100 * tolerance
    dev.axvspan(-band, band, color="#dafbe1", label=f"tolerance ±{band:g} points")
    dev.barh(y, delta, 0.6, color=[KEPT_COLOR if s.meets_target else FAIL_COLOR for s in shown])
    dev.axvline(0, color="black", linewidth=0.8)
    limit = max(abs(delta).max(initial=0), band) * 1.3 or 1
    dev.set_xlim(-limit, limit)
    dev.set_xlabel("realized − target (percentage points)")
    dev.legend(loc="lower right", fontsize=8)
    dev.xaxis.set_major_locator(MaxNLocator(5, symmetric=True))
    dev.set_title("Deviation (red: fails the audit)")
    return _svg(fig)


def variant_rows(build_dir: str, manifest: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """(the main mixture and each variant: label, spec, code:text, tokens, bytes, realized epochs and
    weight per source; notes on variant folders that could not be read)."""
    def row(label: str, m: dict[str, Any], spec: str, cost: dict[str, Any] | None) -> dict[str, Any]:
        mixture = m.get("mixture") or {}
        ratio = mixture.get("code_text_ratio") or {}
        sources = {name: (float(p.get("realized_epochs") or 0.0), float(p.get("realized_weight") or 0.0))
                   for name, p in (mixture.get("sources") or {}).items()}
        return {"label": label, "spec": spec, "target": ratio.get("target"), "realized": ratio.get("realized"),
                "tokens": (m.get("totals") or {}).get("tokens"), "bytes": cost, "sources": sources}

    entries = manifest.get("variants") or []
    if not entries:
        return [], []
    rows, notes = [row("main", manifest, "the build's mixture", None)], []
    for entry in entries:
        path = join(build_dir, str(entry.get("path")), "manifest.json")
        try:
            variant = json.loads(read_bytes(path))
        except (CorpusError, OSError, ValueError) as exc:
            notes.append(f"variant {entry.get('name')}: {path} could not be read ({exc})")
            continue
        spec = ", ".join(f"{k}: {v}" for k, v in sorted((entry.get("spec") or {}).items()) if k != "name")
        rows.append(row(str(entry.get("name")), variant, spec, entry.get("bytes")))
    return rows, notes


def variants_chart(rows: list[dict[str, Any]]) -> str:
    """Realized epochs per source, the main mixture and each variant side by side."""
    sources = sorted({s for r in rows for s, (epochs, _) in r["sources"].items() if epochs > 0},
                     key=lambda s: (-max(r["sources"].get(s, (0.0, 0.0))[0] for r in rows), s))
    fig = _figure(11, 0.3 * len(sources) * max(1, len(rows)) / 2 + 1.8)
    ax = fig.subplots()
    y = np.arange(len(sources))
    height = 0.8 / max(1, len(rows))
    colors = matplotlib_colors(len(rows))
    for i, r in enumerate(rows):
        ratio = "-" if r["realized"] is None else f"{r['realized']:.3f}"
        ax.barh(y - 0.4 + height * (i + 0.5), [r["sources"].get(s, (0.0, 0.0))[0] for s in sources], height,
                color=colors[i], label=f"{r['label']} (code:text {ratio}:1)")
    ax.set_yticks(y, sources)
    ax.invert_yaxis()
    ax.set_xlabel("realized epochs of each source's pool (tokens written / tokens after filtering and dedup)")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Variants: epochs per source, from one pass over the same pools")
    return _svg(fig)


def matplotlib_colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def variants_html(build_dir: str, manifest: dict[str, Any]) -> str:
    rows, notes = variant_rows(build_dir, manifest)
    if not rows:
        return ""
    parts = ["<h2>Variants</h2>"]
    if len(rows) > 1:
        parts.append(_figure_html("chart-variants", variants_chart(rows),
                                  "Each variant is planned from the same pools as the main mixture, its extra "
                                  "copies drawn by the same seeded hash (larger rates take supersets)."))
    parts.append(_table(
        ("mixture", "spec", "code:text target", "code:text realized", "tokens", "index bytes", "shared .bin bytes",
         "copied .bin bytes"),
        ((r["label"], r["spec"], "-" if r["target"] is None else f"{r['target']:.3f}",
          "-" if r["realized"] is None else f"{r['realized']:.3f}", f"{r['tokens'] or 0:,}",
          *(("-", "-", "-") if r["bytes"] is None else (
              f"{r['bytes']['index_bytes']:,}", f"{r['bytes']['linked_bin_bytes']:,}",
              f"{r['bytes']['copied_bin_bytes']:,}")))
         for r in rows), numeric=set(range(2, 8))))
    if notes:
        parts.append("<ul class=\"note\">" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    return "".join(parts)


def reason_colors(reasons: list[str]) -> dict[str, Any]:
    """18 distinct colors (tab20 without its greens, which mean "kept"), cycled beyond that."""
    from matplotlib import colormaps

    tab20 = colormaps["tab20"].colors  # type: ignore[attr-defined]  # a ListedColormap, typed as its base class
    palette = [c for i, c in enumerate(tab20) if i not in (4, 5)]
    return {r: palette[i % len(palette)] for i, r in enumerate(reasons)}


def funnel_chart(rows: list[tuple[str, int, dict[str, int]]]) -> str:
    colors = reason_colors([f"{stage}: {r}" for stage, _, dropped in rows for r in dropped])
    fig = _figure(11, 0.55 * len(rows) + 1.8)
    ax = fig.subplots()
    y = np.arange(len(rows))
    for i, (stage, kept, dropped) in enumerate(rows):
        ax.barh(i, kept, color=KEPT_COLOR, label="kept" if i == 0 else None)
        left = kept
        for reason, docs in dropped.items():
            key = f"{stage}: {reason}"
            ax.barh(i, docs, left=left, color=colors[key], label=key)
            left += docs
        total = kept + sum(dropped.values())
        ax.text(total, i, f"  {kept:,} of {total:,} kept", va="center", fontsize=8)
    ax.set_yticks(y, [r[0] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("documents entering the stage")
    ax.set_xlim(0, max((r[1] + sum(r[2].values()) for r in rows), default=1) * 1.2)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    # Outside the axes: a build with many drop reasons would cover its own bars.
    ax.legend(unique.values(), unique.keys(), loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    ax.set_title("Drop funnel: documents kept and dropped per stage and reason")
    return _svg(fig)


def cluster_chart(histograms: dict[str, dict[int, int]]) -> str:
    bounds = sorted({b for h in histograms.values() for b in h})
    fig = _figure(11, 3.6)
    ax = fig.subplots()
    x = np.arange(len(bounds))
    width = 0.8 / max(len(histograms), 1)
    colors = reason_colors(list(histograms))
    for i, (name, hist) in enumerate(histograms.items()):
        counts = [hist.get(b, 0) for b in bounds]
        bars = ax.bar(x + (i - (len(histograms) - 1) / 2) * width, counts, width, label=name,
                      color=colors[name])
        ax.bar_label(bars, labels=[f"{c:,}" if c else "" for c in counts], fontsize=7)
    ax.set_xticks(x, [bucket_label(b) for b in bounds])
    largest = max((c for h in histograms.values() for c in h.values()), default=1)
    if largest >= LOG_SCALE_ABOVE:
        ax.set_yscale("log")
    ax.set_ylim(0.8 if largest >= LOG_SCALE_ABOVE else 0, largest * (3 if largest >= LOG_SCALE_ABOVE else 1.15))
    ax.set_xlabel("documents per duplicate cluster (survivor included)")
    ax.set_ylabel("clusters" + (" (log scale)" if largest >= LOG_SCALE_ABOVE else ""))
    ax.legend(fontsize=8)
    ax.set_title("Dedup cluster sizes")
    return _svg(fig)


def lengths_chart(sources: list[SourceAudit]) -> str:
    shown = [s for s in sources if s.lengths.documents]
    rows = math.ceil(len(shown) / LENGTH_COLUMNS)
    fig = _figure(11, 2.3 * rows + 0.6)
    from matplotlib.ticker import MaxNLocator, NullLocator

    # One shared log axis, so the panels compare at a glance.
    axes = np.atleast_1d(fig.subplots(rows, LENGTH_COLUMNS, squeeze=False, sharex=True)).ravel()
    for ax, source in zip(axes, shown, strict=False):
        hist = source.lengths
        used = np.flatnonzero(hist.counts)
        lo, hi = used.min(), used.max() + 1
        edges = hist.edges()[lo: hi + 1]
        ax.stairs(hist.counts[lo:hi], edges, fill=True, color=REALIZED_COLOR if source.kind == "code" else KEPT_COLOR)
        ax.set_xscale("log")
        ax.xaxis.set_minor_locator(NullLocator())  # minor log ticks cost most of the drawing time
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelbottom=True)
        ax.axvline(hist.quantile(0.5), color="black", linewidth=0.8, linestyle="--")
        ax.set_title(f"{source.name} ({source.kind}): {hist.documents:,} docs, median ≈{hist.quantile(0.5):,.0f}",
                     fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("tokens per document", fontsize=8)
    for ax in axes[len(shown):]:
        ax.set_visible(False)
    fig.suptitle("Document length per source (distinct documents in the shards; dashed: median)")
    return _svg(fig)


# ---------------------------------------------------------------------------------------------
# Page


# A backslash ending a line continues it: the style sheet is written as it always was, in long lines.
CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;\
max-width:1180px;color:#1f2328;padding:0 16px}
h1{font-size:22px;margin:0 0 4px} \
h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;color:#fff;font-weight:600}
.ok{background:#2da44e} .fail{background:#cf222e}
table{border-collapse:collapse;margin:8px 0;font-size:13px} th,td{border:1px solid #d0d7de;padding:3px 8px}
th{background:#f6f8fa;text-align:left} td.n{text-align:right;font-variant-numeric:tabular-nums}
.meta td:first-child{color:#57606a} ul.mismatch li{color:#a40e26} figure{margin:12px 0} \
figure svg{max-width:100%;height:auto}
figcaption{color:#57606a;font-size:12px} .note{color:#57606a} summary{cursor:pointer;color:#0969da;margin:6px 0}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td class=\"n\">{_e(c)}</td>" if i in numeric else f"<td>{_e(c)}</td>"
                         for i, c in enumerate(row)) + "</tr>"
        for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _details(summary: str, body: str) -> str:
    """A collapsed section (no script needed): long tables stay out of the way of the charts."""
    return f"<details><summary>{_e(summary)}</summary>{body}</details>"


def _figure_html(chart_id: str, svg: str, caption: str) -> str:
    return f'<figure id="{chart_id}">{svg}<figcaption>{_e(caption)}</figcaption></figure>'


def redactions_html(edits: dict[str, Any] | None) -> str:
    """The `pii` filter's redactions per source and type (manifest `filter_edits.pii`), and what other
    filters changed in kept documents."""
    pii = (edits or {}).get("pii") or {}
    if not pii:
        parts = ["<p class=\"note\">No redactions in this manifest (the pii filter did not run or found "
                 "nothing, or the manifest predates <code>filter_edits</code>).</p>"]
    else:
        types = [t for t in PII_TYPES if any(t in counts for counts in pii.values())]
        rows = [(source, f"{counts.get('documents', 0):,}", f"{sum(counts.get(t, 0) for t in PII_TYPES):,}",
                 *(f"{counts.get(t, 0):,}" for t in types)) for source, counts in sorted(pii.items())]
        totals = ("all sources", f"{sum(c.get('documents', 0) for c in pii.values()):,}",
                  f"{sum(c.get(t, 0) for c in pii.values() for t in PII_TYPES):,}",
                  *(f"{sum(c.get(t, 0) for c in pii.values()):,}" for t in types))
        parts = ["<p>Values replaced in kept documents before tokenization (documents: those with at least "
                 "one redaction).</p>",
                 _table(("source", "documents", "redactions", *types), [*rows, totals],
                        numeric=set(range(1, 3 + len(types))))]
    others = [(name, source, " · ".join(f"{k} {v:,}" for k, v in counts.items()))
              for name, sources in sorted((edits or {}).items()) if name != "pii"
              for source, counts in sorted(sources.items())]
    if others:
        parts.append(_details("Other edits by filters", _table(("filter", "source", "edits"), others)))
    return "".join(parts)


def contamination_chart(rows: list[dict[str, Any]]) -> str:
    """Documents holding items of each benchmark: dropped by `decontam`, and dropped first by another filter."""
    shown = [r for r in rows if r["documents"]]
    fig = _figure(9, 0.45 * len(shown) + 1.4)
    ax = fig.subplots()
    y = np.arange(len(shown))
    dropped = np.array([r["dropped"] for r in shown])
    anyway = np.array([r["dropped_by_other_filters"] for r in shown])
    named_other = np.array([r["documents"] - r["dropped"] - r["dropped_by_other_filters"] for r in shown])
    ax.barh(y, dropped, color=FAIL_COLOR, label="dropped by decontam (named this benchmark)")
    ax.barh(y, anyway, left=dropped, color=TARGET_COLOR, label="dropped first by another filter")
    ax.barh(y, named_other, left=dropped + anyway, color=REALIZED_COLOR, label="dropped under another benchmark")
    ax.set_yticks(y, [f"{r['benchmark']} ({r['items_matched']:,} items)" for r in shown])
    ax.invert_yaxis()
    ax.set_xlabel("documents holding items of the benchmark")
    ax.legend(loc="lower right", fontsize=8)
    return _svg(fig)


def contamination_html(rows: list[dict[str, Any]], section: dict[str, Any] | None) -> str:
    """The `decontam` filter's report: per benchmark the items found and the documents that held them,
    the index each chain matched against, and the items found in most documents."""
    if not isinstance(section, dict):
        return ("<p class=\"note\">No contamination report in this manifest (no chain ran the decontam "
                "filter, or the manifest predates it).</p>")
    parts = [f"<p>{section.get('documents', 0):,} documents held benchmark items: "
             f"{section.get('dropped', 0):,} dropped by <code>decontam</code>, "
             f"{section.get('dropped_by_other_filters', 0):,} by another filter first "
             f"({_e(', '.join(f'{r} {n:,}' for r, n in (section.get('other_filters') or {}).items()) or 'none')}).</p>"]
    if any(r["documents"] for r in rows):
        parts.append(_figure_html("chart-contamination", contamination_chart(rows),
                                  "Documents holding items of each benchmark, by what removed them."))
    parts.append(_table(
        ("benchmark", "items indexed", "items found", "documents", "dropped", "dropped anyway", "sources"),
        ((r["benchmark"], f"{r['items']:,}", f"{r['items_matched']:,}", f"{r['documents']:,}", f"{r['dropped']:,}",
          f"{r['dropped_by_other_filters']:,}", ", ".join(f"{s} {n:,}" for s, n in r["by_source"].items()) or "-")
         for r in rows), numeric={1, 2, 3, 4, 5}))
    items = [(r["benchmark"], t["item"], f"{t['documents']:,}") for r in rows for t in r["top_items"]]
    if items:
        parts.append(_details("Items found in the most documents (all of them: the manifest's "
                              "decontamination.benchmarks.*.items)", _table(("benchmark", "item", "documents"), items,
                                                                           numeric={2})))
    indexes = [(kind, identity.get("index") or "-", identity.get("index_sha256") or "-",
                ", ".join(f"{k} {v}" for k, v in sorted((identity.get("settings") or {}).items())),
                f"{identity.get('min_containment')}")
               for kind, identity in sorted((section.get("indexes") or {}).items())]
    parts.append(_details("Indexes matched against", _table(("chain", "index", "sha256", "settings", "min containment"),
                                                            indexes)))
    return "".join(parts)


def render_report(result: AuditResult) -> str:
    """The whole page as a string."""
    data = result.to_json()
    manifest = result.manifest
    build = manifest.get("build") or {}
    run = manifest.get("run") or {}
    tokenizer = manifest.get("tokenizer") or {}
    ratio, target_ratio = data["code_text_ratio"], data["target_code_text_ratio"]
    verdict = ('<span class="badge ok">audit passed</span>' if result.ok else
               f'<span class="badge fail">audit failed: {len(result.mismatches)} mismatch(es)</span>')
    meta = [
        ("build folder", result.build_dir), ("config hash", build.get("config_hash")),
        ("schema version", manifest.get("schema_version")),
        ("code", f"{(manifest.get('code') or {}).get('version')} @ {(manifest.get('code') or {}).get('git_commit')}"),
        ("tokenizer", f"{tokenizer.get('name')} (vocabulary {tokenizer.get('vocab_size')}, "
                      f"EOS id {tokenizer.get('eos_id')}, {tokenizer.get('dtype')})"),
        ("run", f"{run.get('runner')}, {run.get('started')} → {run.get('finished')}"),
        ("targets from", result.targets_from), ("tolerance", f"{100 * result.tolerance:g} percentage points"),
        ("totals", f"{data['total_shards']} shards, {result.total_documents:,} documents, "
                   f"{result.total_tokens:,} tokens"),
        ("code:text", f"{'-' if ratio is None else f'{ratio:.3f}'}:1 realized, "
                      f"{'-' if target_ratio is None else f'{target_ratio:.3f}'}:1 target"),
    ]
    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>Audit of {_e(build.get('name'))}</title><style>{CSS}</style></head><body>",
        f"<h1>Audit of build {_e(build.get('name'))}</h1><p>{verdict}</p>",
        "<table class=\"meta\"><tbody>" + "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in meta)
        + "</tbody></table>",
    ]
    if result.mismatches:
        parts.append("<h2>Mismatches</h2><ul class=\"mismatch\">"
                     + "".join(f"<li>{_e(m)}</li>" for m in result.mismatches) + "</ul>")
    if result.notes:
        parts.append("<ul class=\"note\">" + "".join(f"<li>{_e(n)}</li>" for n in result.notes) + "</ul>")
    parts.append("<h2>Mixture: target vs realized weight</h2>")
    parts.append(_figure_html("chart-weights", weights_chart(result.sources, result.tolerance),
                              "Targets are the config's weights after the redistribution of empty sources; "
                              "realized weights are measured from the shards."))
    parts.append(_table(
        ("source", "kind", "status", "tokens", "documents", "distinct", "pool tokens", "planned epochs",
         "realized epochs", "paper epochs", "configured", "target", "realized"),
        ((s.name, s.kind, s.status, f"{s.tokens:,}", f"{s.documents:,}", f"{s.unique_documents:,}",
          f"{'≥' if s.untokenized_documents else ''}{s.pool_tokens:,}", f"{s.planned_epochs:.3f}",
          f"{s.realized_epochs:.3f}",
          "-" if s.reference_epochs is None else f"{s.reference_epochs:g}", f"{100 * s.configured_weight:.3f}%",
          f"{100 * s.target_weight:.3f}%", f"{100 * s.realized_weight:.3f}%") for s in result.sources),
        numeric=set(range(3, 13))))
    parts.append(variants_html(result.build_dir, manifest))
    stages = (manifest.get("accounting") or {}).get("stages") or {}
    rows = funnel_rows(stages)
    parts.append("<h2>Drop funnel</h2>")
    if rows:
        parts.append(_figure_html("chart-funnel", funnel_chart(rows),
                                  "Every document entering a stage is kept or dropped under a named reason."))
        parts.append(_details("Documents per stage and group", _table(
            ("stage", "group", "in", "out", "dropped (reason: documents)"),
            ((stage, group, f"{e['in']['docs']:,}", f"{e['out']['docs']:,}",
              ", ".join(f"{r}: {d['docs']:,}" for r, d in e.get("dropped", {}).items()) or "-")
             for stage in ordered_stages(stages) for group, e in stages[stage].items()),
            numeric={2, 3})))
    else:
        parts.append("<p class=\"note\">The manifest has no accounting.</p>")
    parts.append("<h2>Dedup</h2>")
    histograms = cluster_histograms(manifest.get("dedup") or {})
    if histograms:
        parts.append(_figure_html("chart-clusters", cluster_chart(histograms),
                                  "Clusters of duplicate documents by size (power-of-two buckets), "
                                  "per dedup step and kind."))
    else:
        parts.append("<p class=\"note\">No cluster-size statistics in this manifest (no duplicates found, or "
                     "written before the dedup steps reported them).</p>")
    dedup_rows = [(section, group, " · ".join(f"{m} {v:,}" if isinstance(v, int) else f"{m} {v}"
                                              for m, v in metrics.items()
                                              if not str(m).startswith(CLUSTER_SIZE_METRIC)))
                  for section, groups in (manifest.get("dedup") or {}).items() if isinstance(groups, dict)
                  for group, metrics in groups.items() if isinstance(metrics, dict)]
    if dedup_rows:
        parts.append(_details("Dedup statistics", _table(("section", "group", "metrics"), dedup_rows)))
    parts.append("<h2>Redactions</h2>")
    parts.append(redactions_html(manifest.get("filter_edits")))
    parts.append("<h2>Contamination</h2>")
    parts.append(contamination_html(data.get("contamination") or [], manifest.get("decontamination")))
    parts.append("<h2>Document lengths</h2>")
    if any(s.lengths.documents for s in result.sources):
        parts.append(_figure_html("chart-lengths", lengths_chart(result.sources),
                                  "Tokens per distinct document (EOS included), from the shards' docs index."))
        parts.append(_table(("source", "documents", "min", "median", "p90", "p99", "max", "mean"),
                            ((s.name, f"{s.lengths.documents:,}", f"{s.lengths.shortest:,}",
                              f"{s.lengths.quantile(0.5):,.0f}", f"{s.lengths.quantile(0.9):,.0f}",
                              f"{s.lengths.quantile(0.99):,.0f}", f"{s.lengths.longest:,}",
                              f"{s.lengths.tokens / s.lengths.documents:,.0f}")
                             for s in result.sources if s.lengths.documents), numeric=set(range(1, 8))))
    else:
        parts.append("<p class=\"note\">No documents in the shards.</p>")
    parts.append("<h2>Shards</h2>")
    parts.append(_table(("shard", "tokens", "documents", "bytes", "verdict"),
                        ((s["name"], f"{s['tokens']:,}", f"{s['documents']:,}", f"{s['bytes']:,}",
                          "ok" if s["ok"] else "MISMATCH") for s in data["shards"]), numeric={1, 2, 3}))
    parts.append("<p class=\"note\">Written by <code>corpus audit --report</code> (lemur-corpus).</p></body></html>")
    return "".join(parts)


def write_report(result: AuditResult, path: str) -> None:
    write_atomic(path, render_report(result).encode("utf-8"))
