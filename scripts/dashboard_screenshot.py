"""Take the dashboard screenshot of the docs (docs/images/dashboard.png) from a real demo run.

Starts ``rheos demo`` in a fresh data directory, opens its dashboard in Debian's Chromium
(driven by Playwright), waits until late events and dead letters are on the page, saves a
screenshot and stops the demo with Ctrl-C.

    python scripts/dashboard_screenshot.py [--out docs/images/dashboard.png] [--wait 11]
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "images" / "dashboard.png"))
    parser.add_argument("--wait", type=float, default=11.0, help="seconds of demo to show")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rheos-shot-") as data:
        demo = subprocess.Popen(
            [sys.executable, "-m", "rheos", "--data-dir", data, "demo", "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert demo.stdout is not None
        url = None
        for line in demo.stdout:
            found = re.search(r"dashboard: (\S+)", line)
            if found:
                url = found.group(1)
                break
        assert url, "the demo printed no dashboard address"
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(url + "?interval=500")
                time.sleep(args.wait)
                page.screenshot(path=args.out, full_page=True)
                browser.close()
        finally:
            demo.send_signal(signal.SIGINT)
            demo.communicate(timeout=60)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
