"""Render an audit report and photograph it in a real browser (headless Chromium), to look at the charts.

    .venv/bin/python benchmarks/report_screenshot.py [BUILD] [--out report.png] [--height 5200]

BUILD defaults to build/default (`make run`). Writes `<out>.html` (the report `corpus audit --report`
writes) and `<out>` (a full-width PNG screenshot), and prints the charts the page holds and the time
rendering took next to the audit itself. Needs a Chromium binary (`apt-get install -y chromium`); not
part of the test suite, which parses the HTML instead. The browser runs sandboxed off the network with
a throwaway profile.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lemur_corpus.audit import audit_build  # noqa: E402
from lemur_corpus.report import render_report  # noqa: E402

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars")


def screenshot(html_path: str, png_path: str, width: int, height: int) -> None:
    browser = next((b for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        raise SystemExit("no Chromium found (apt-get install -y chromium); the HTML is at " + html_path)
    with tempfile.TemporaryDirectory(prefix="lemur-chromium-") as profile:
        subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
                        f"--screenshot={os.path.abspath(png_path)}", "file://" + os.path.abspath(html_path)],
                       check=True, capture_output=True, timeout=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build", nargs="?", default="build/default", help="a finished build folder")
    parser.add_argument("--out", default="report.png", help="the PNG to write (the HTML goes beside it)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=5200)
    args = parser.parse_args()
    started = time.perf_counter()
    result = audit_build(args.build)
    audited = time.perf_counter()
    page = render_report(result)
    rendered = time.perf_counter()
    html_path = os.path.splitext(args.out)[0] + ".html"
    with open(html_path, "w", encoding="utf-8") as handle:
        handle.write(page)
    screenshot(html_path, args.out, args.width, args.height)
    charts = re.findall(r'<figure id="(chart-[a-z]+)"><svg', page)
    print(f"audit ok={result.ok}: {audited - started:.2f} s; report rendered in {rendered - audited:.2f} s "
          f"({len(page) / 1e3:,.0f} kB, charts: {', '.join(charts)})")
    print(f"ratio render/audit: {(rendered - audited) / (audited - started):.2f}x")
    print(f"screenshot: {args.out}  html: {html_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
