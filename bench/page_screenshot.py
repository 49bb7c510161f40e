"""docs/page.png: the server's web page in Debian's Chromium, as a user first sees it at
work: a tiny export served, a few hundred of its target's test digits already answered
(the monitor's figures and charts filled), and a hand-drawn 7 asked about. The export
is trained for 300 steps on the embedded pair: a model to look at, not a good one.

Run from the checkout's root: ``python -m bench.page_screenshot`` (``make page-screenshot``).
Not a benchmark: it measures nothing; it lives here beside the scripts that share its
tiny export and server process.
"""

from __future__ import annotations

import json
import tempfile
import time
import urllib.request
from pathlib import Path

from bench._common import ROOT, argument_parser, tiny_export
from harness.browser import Offline, launch
from harness.server_process import LocalServer

# A 7 drawn on the 280x280 pad: strokes of (x, y) points.
SEVEN = [[(75, 70), (205, 70), (125, 235)]]


def send_traffic(rest_url: str, images: int, rounds: int) -> None:
    """``images`` of the served target's test digits, ``rounds`` times, a moment apart, so
    that the monitor's charts have a few points."""
    from dann_serve.config import TrainConfig
    from dann_serve.data.catalog import load_domain

    pixels = load_domain(TrainConfig().target).test.images[:images]
    body = json.dumps({"signature_name": "predict_label_uint8", "inputs": pixels.tolist()})
    for _ in range(rounds):
        request = urllib.request.Request(
            f"{rest_url}/v1/models/dann:predict", data=body.encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
        time.sleep(2.2)  # one refresh of the page apart


def draw(page, strokes: list[list[tuple[int, int]]]) -> None:
    pad = page.locator("#pad")
    pad.scroll_into_view_if_needed()
    box = pad.bounding_box()
    for stroke in strokes:
        page.mouse.move(box["x"] + stroke[0][0], box["y"] + stroke[0][1])
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x, box["y"] + y, steps=8)
        page.mouse.up()


def screenshot(rest_url: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        offline = Offline(page, rest_url)
        page.goto(rest_url + "/")
        page.locator("#monitor article").first.wait_for()
        send_traffic(rest_url, images=100, rounds=8)
        draw(page, SEVEN)
        page.get_by_role("button", name="Predict the drawing").click()
        page.locator("#try-status", has_text="answered").wait_for()
        page.screenshot(path=str(out), full_page=True)
        browser.close()
    if offline.aborted:
        raise SystemExit(f"the page asked for other hosts: {offline.aborted}")


def main() -> None:
    parser = argument_parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model-dir", type=Path, help="a model dir with dann/ [default: a tiny export]"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "page.png")
    parser.add_argument(
        "--steps", type=int, default=300, help="training steps of the tiny export [300]"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="page-screenshot-") as work:
        model_dir = args.model_dir or tiny_export(Path(work), args.steps)
        server = LocalServer(model_dir, Path(work) / "serve.log", "--monitor-window", "500")
        try:
            server.wait_ready()
            screenshot(server.rest_url, args.out)
        finally:
            server.stop()
    print(args.out)


if __name__ == "__main__":
    main()
