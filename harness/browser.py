"""Debian's Chromium driven by Playwright, for the web page's tests and its screenshot.

Never a browser build Playwright downloads (``playwright install``): the system's
``chromium`` package, which ``make test`` installs when it is missing. The flags keep
it from reaching anything but the page's server (no component updates, no sync, no
background requests) and let it run as root in a container (``--no-sandbox``).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlsplit

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DEBIAN_CHROMIUM = Path("/usr/bin/chromium")


class BrowserMissing(RuntimeError):
    """No Chromium on this machine."""


def chromium_path() -> str:
    """The system's Chromium; BrowserMissing saying how to install it if there is none."""
    found = shutil.which("chromium") or (str(DEBIAN_CHROMIUM) if DEBIAN_CHROMIUM.exists() else "")
    if not found:
        raise BrowserMissing(
            "Chromium is not installed: `make test` installs it (apt-get install chromium);"
            " the page's browser tests need it"
        )
    return found


def launch(playwright):
    """A headless Chromium (``playwright.chromium``) from the system's package."""
    return playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)


class Offline:
    """A page cut off from every host but ``server_url``'s: any other request is aborted
    and kept in :attr:`aborted`; every request the page made is in :attr:`requested`."""

    def __init__(self, page, server_url: str) -> None:
        self.origin = urlsplit(server_url).netloc
        self.aborted: list[str] = []
        self.requested: list[str] = []
        page.route("**/*", self._route)

    def _route(self, route) -> None:
        url = route.request.url
        self.requested.append(url)
        if urlsplit(url).netloc == self.origin:
            route.continue_()
        else:
            self.aborted.append(url)
            route.abort()
