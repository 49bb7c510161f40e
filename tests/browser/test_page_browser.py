"""The web page in a real browser: Debian's Chromium driven by Playwright, against a real
``dann-serve serve`` of the tiny export. Every page is cut off from every host but the
server's (``harness.browser.Offline``): it must load and answer with nothing else, no
console error and no Content-Security-Policy violation.

Chromium missing is a failure that says how to install it, never a skip: ``make test``
installs it."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from support.helpers import models_copy, rest

from harness.browser import BrowserMissing, Offline, launch

pytestmark = pytest.mark.slow  # a server process and a browser for the module

# Watches the policy from inside the page (added before the page's own script runs).
VIOLATIONS = """
window.violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.violations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


@pytest.fixture(scope="module")
def server(exported_model: Path, start_server, tmp_path_factory):
    model_dir = models_copy(exported_model, tmp_path_factory.mktemp("browser"))
    return start_server(model_dir, "--monitor-window", "100")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        try:
            opened = launch(playwright)
        except BrowserMissing as error:
            pytest.fail(str(error))
        yield opened
        opened.close()


class Visit:
    """One page of the server's, offline but for the server, with what went wrong in it."""

    def __init__(self, browser, server) -> None:
        self.context = browser.new_context()
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        self.page.add_init_script(VIOLATIONS)
        self.offline = Offline(self.page, server.rest_url)
        self.page.goto(server.rest_url + "/")
        self.page.locator("#models tbody th", has_text="dann").wait_for()

    def _console(self, message) -> None:
        if message.type in ("error", "warning"):
            self.errors.append(f"{message.type}: {message.text}")

    def answered(self, what: str) -> int:
        """The label the page shows once the model has answered about ``what``."""
        self.page.locator("#try-status", has_text=f"answered about {what}").wait_for()
        return int(self.page.locator("#label").text_content())

    def check_clean(self) -> None:
        assert self.errors == []
        assert self.page.evaluate("window.violations") == []
        assert self.offline.aborted == []
        assert self.offline.requested  # the route saw the page's requests

    def close(self) -> None:
        self.context.close()


@pytest.fixture()
def visit(browser, server):
    opened = Visit(browser, server)
    yield opened
    opened.close()


def test_the_page_loads_offline_and_shows_the_models_and_monitor(visit: Visit) -> None:
    page = visit.page
    row = page.locator("#models tbody tr").first
    assert row.locator("td").nth(1).text_content() == "AVAILABLE"
    assert page.locator("#model").input_value() == "dann"
    card = page.locator("#monitor article[data-version='1']")
    card.wait_for()
    assert card.locator("canvas").count() == 3
    assert page.get_by_label("Model shown below and asked in “Try it”").count() == 1
    assert page.get_by_label("Or choose an image file (PNG, JPEG, GIF or BMP)").count() == 1
    visit.check_clean()


def _seen_ink(page) -> int:
    """The sum of the 32x32 canvas's pixels: what the page drew of the model's input."""
    return page.evaluate(
        """() => Array.from(document.getElementById("seen").getContext("2d")
              .getImageData(0, 0, 32, 32).data).reduce((sum, value) => sum + value, 0)"""
    )


def test_drawing_a_one_and_submitting_shows_a_label(visit: Visit) -> None:
    page = visit.page
    pad = page.locator("#pad")
    pad.scroll_into_view_if_needed()
    box = pad.bounding_box()
    x = box["x"] + box["width"] / 2
    page.mouse.move(x, box["y"] + 40)
    page.mouse.down()
    for step in range(1, 11):
        page.mouse.move(x, box["y"] + 40 + step * (box["height"] - 80) / 10)
    page.mouse.up()
    page.get_by_role("button", name="Predict the drawing").click()
    assert visit.answered("the drawing") in range(10)
    assert len(page.locator("#probability-text").text_content().split(", ")) == 10
    assert page.locator("#domain").text_content().startswith(("source (", "target ("))
    assert _seen_ink(page) > 32 * 32 * 255  # more than the opaque black background
    visit.check_clean()


def test_the_pad_draws_and_sends_with_the_keyboard_alone(visit: Visit) -> None:
    page = visit.page
    page.locator("#pad").focus()
    for key in ["ArrowUp"] * 6 + ["ArrowDown"] * 12:  # a stroke through the middle: a 1
        page.keyboard.press(key)
    page.keyboard.press("Enter")
    assert visit.answered("the drawing") in range(10)
    assert _seen_ink(page) > 32 * 32 * 255
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "send"
    visit.check_clean()


def _transfer(page, path: Path):
    """A DataTransfer in the page holding the PNG file at ``path``."""
    data = base64.b64encode(path.read_bytes()).decode()
    return page.evaluate_handle(
        """([data, name]) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: "image/png" }));
            return transfer;
        }""",
        [data, path.name],
    )


def _drop(page, path: Path) -> None:
    """Drop the file at ``path`` on the drawing pad, as a user drags it there."""
    page.dispatch_event("#pad", "drop", {"dataTransfer": _transfer(page, path)})


def _paste(page, path: Path) -> None:
    """Paste the file at ``path`` into the page, as from a copied image."""
    page.evaluate(
        """(transfer) => document.dispatchEvent(
            new ClipboardEvent("paste", { clipboardData: transfer, bubbles: true }))""",
        _transfer(page, path),
    )


def test_a_dropped_chosen_or_pasted_png_gets_the_clients_label(
    visit: Visit, server, tiny_files: list[Path], dann_client
) -> None:
    dropped, chosen, pasted = tiny_files[5], tiny_files[17], tiny_files[29]
    files = (dropped, chosen, pasted)
    result = dann_client("predict", *files, "--json", "--server", server.rest_url)
    assert result.returncode == 0, result.stderr
    labels = {Path(r["path"]).name: r["label"] for r in map(json.loads, result.stdout.splitlines())}
    _drop(visit.page, dropped)
    assert visit.answered(dropped.name) == labels[dropped.name]
    visit.page.get_by_label("Or choose an image file (PNG, JPEG, GIF or BMP)").set_input_files(
        chosen
    )
    assert visit.answered(chosen.name) == labels[chosen.name]
    _paste(visit.page, pasted)
    assert visit.answered("the pasted image") == labels[pasted.name]
    visit.check_clean()


def test_a_missing_chromium_fails_saying_how_to_install_it(monkeypatch, tmp_path) -> None:
    from harness import browser

    monkeypatch.setattr(browser.shutil, "which", lambda name: None)
    monkeypatch.setattr(browser, "DEBIAN_CHROMIUM", tmp_path / "chromium")
    with pytest.raises(browser.BrowserMissing, match="apt-get install chromium"):
        browser.chromium_path()


def test_the_monitor_panel_changes_after_traffic(visit: Visit, server, tiny_files) -> None:
    from PIL import Image

    figure = visit.page.locator("#monitor article[data-version='1'] [data-figure='images']")
    figure.wait_for()
    before = figure.text_content()
    pixels = np.stack([np.asarray(Image.open(path)) for path in tiny_files[:40]])
    code, body = rest(
        server,
        "/v1/models/dann:predict",
        {"signature_name": "predict_label_uint8", "inputs": pixels.tolist()},
    )
    assert code == 200, body
    count = int(before.split(" ")[0])
    visit.page.wait_for_function(
        """([count]) => {
            const shown = document.querySelector(
                "#monitor article[data-version='1'] [data-figure='images']");
            return shown && parseInt(shown.textContent, 10) >= count + 40;
        }""",
        arg=[count],
        timeout=20_000,
    )
    visit.check_clean()
