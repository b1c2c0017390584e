"""The HTML report: its chart data from manifest sections, and the page rendered from a real build's audit,
parsed back to check that every chart is there, inline, and that nothing is fetched from elsewhere."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from lemur_corpus.audit import audit_build
from lemur_corpus.cli import main
from lemur_corpus.manifest import cluster_size_metric
from lemur_corpus.report import bucket_label, cluster_histograms, funnel_rows, render_report

CHARTS = ("chart-weights", "chart-funnel", "chart-clusters", "chart-lengths")


class PageParser(HTMLParser):
    """Collects what the checks need: figures and the svg inside them, tables, external references."""

    def __init__(self) -> None:
        super().__init__()
        self.figure: str | None = None
        self.svg_in_figure: dict[str, int] = {}
        self.texts_in_figure: dict[str, list[str]] = {}
        self.external: list[str] = []
        self.tags: dict[str, int] = {}
        self.title = ""
        self._in_title = False
        self.cells: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        values = dict(attrs)
        if tag == "figure":
            self.figure = values.get("id")
        if tag == "svg" and self.figure:
            self.svg_in_figure[self.figure] = self.svg_in_figure.get(self.figure, 0) + 1
        for name in ("src", "href", "xlink:href"):
            value = values.get(name) or ""
            if value and not value.startswith("#") and not value.startswith("data:"):
                self.external.append(value)
        self._in_title = tag == "title"
        self._in_cell = tag == "td"

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure":
            self.figure = None
        if tag in ("title", "td"):
            self._in_title = self._in_cell = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        if self._in_cell:
            self.cells.append(data.strip())
        if self.figure and data.strip():
            self.texts_in_figure.setdefault(self.figure, []).append(data.strip())


def parse(page: str) -> PageParser:
    parser = PageParser()
    parser.feed(page)
    parser.close()
    return parser


def test_funnel_rows_follow_pipeline_order_and_sum_groups() -> None:
    entry = lambda i, o, dropped: {"in": {"docs": i}, "out": {"docs": o}, "dropped": dropped}  # noqa: E731
    stages = {  # as read back from JSON: keys sorted, not in pipeline order
        "dedup": {"python": entry(10, 7, {"exact_duplicate": {"docs": 3}}),
                  "sql": entry(5, 4, {"near_duplicate": {"docs": 1}})},
        "read": {"local": entry(16, 16, {})},
        "tokenize": {"python": entry(7, 7, {}), "sql": entry(4, 4, {})},
        "normalize": {"python": entry(10, 10, {}), "sql": entry(6, 5, {"empty_text": {"docs": 1}})},
    }
    rows = funnel_rows(stages)
    assert [r[0] for r in rows] == ["read", "normalize", "dedup", "tokenize"]
    assert rows[2] == ("dedup", 11, {"exact_duplicate": 3, "near_duplicate": 1})
    assert rows[1] == ("normalize", 15, {"empty_text": 1})


def test_cluster_histograms_read_the_metrics_defensively() -> None:
    dedup = {
        "exact": {"code": {"clusters": 3, cluster_size_metric(2): 2, cluster_size_metric(3): 1}},
        "near": {"text": {cluster_size_metric(9): 4, "cluster_size_le_x": 5, "max_cluster_size": 9}},
        "broken": ["not", "a", "mapping"],
        "exact_by_source": {"python": "nor this"},
    }
    assert cluster_histograms(dedup) == {"exact/code": {2: 2, 4: 1}, "near/text": {16: 4}}
    assert cluster_histograms({}) == {}
    assert [bucket_label(b) for b in (2, 4, 8, 1024)] == ["2", "3–4", "5–8", "513–1024"]


@pytest.mark.slow
def test_report_of_a_real_build_renders_every_chart_inline(small_build: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "report.html"
    assert main(["audit", str(small_build), "--report", str(out), "--json"]) == 0
    capsys.readouterr()
    page = out.read_text(encoding="utf-8")
    parsed = parse(page)
    assert parsed.title == "Audit of small"
    for chart in CHARTS:
        assert parsed.svg_in_figure.get(chart) == 1, f"{chart} is missing or has no inline svg"
    assert "Target vs realized weight per source" in parsed.texts_in_figure["chart-weights"]
    assert any("Drop funnel" in t for t in parsed.texts_in_figure["chart-funnel"])
    assert parsed.tags.get("script", 0) == 0 and parsed.tags.get("img", 0) == 0
    assert parsed.external == [], "the page must be self-contained"
    manifest = json.loads((small_build / "manifest.json").read_text())
    for source in manifest["mixture"]["sources"]:
        assert source in parsed.cells
    assert "audit passed" in page and "Mismatches" not in page


@pytest.mark.slow
def test_report_lists_mismatches_and_is_deterministic(small_build: Path, tmp_path: Path) -> None:
    build = tmp_path / "build"
    shutil.copytree(small_build, build)
    target = build / "shards" / "shard-00000.bin"
    data = bytearray(target.read_bytes())
    data[100] ^= 0xFF
    target.write_bytes(bytes(data))
    result = audit_build(str(build))
    page = render_report(result)
    assert page == render_report(audit_build(str(build)))
    assert "audit failed" in page and "<h2>Mismatches</h2>" in page
    assert "shards/shard-00000.bin: sha256" in page
    assert "MISMATCH" in parse(page).cells
