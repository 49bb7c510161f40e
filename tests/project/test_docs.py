"""The documentation a user reads first stays short, current and navigable: the README
fits a few screens, every relative link of the Markdown pages leads somewhere, and no
page or module explains itself by a tracker number the user never sees."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README_MAX_LINES = 150
TRACKER_NUMBER = re.compile(r"issue [0-9]+", re.IGNORECASE)
# [text](target) where target is not a web address or a bare anchor
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


def tracked(*patterns: str) -> list[Path]:
    """The checkout's tracked files matching ``patterns`` (what a clone holds)."""
    listed = subprocess.run(
        ["git", "ls-files", *patterns], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return [ROOT / name for name in listed]


def markdown_pages() -> list[Path]:
    return [path for path in tracked("*.md") if path.exists()]


def test_the_readme_fits_three_screens():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"


def test_extending_walks_through_each_kind_of_extension():
    text = (ROOT / "docs" / "EXTENDING.md").read_text()
    for heading in (
        "an adaptation method",
        "a data set",
        "a serving signature",
        "a selection criterion",
    ):
        assert f"## Adding {heading}" in text, heading


def test_no_module_or_page_cites_a_tracker_number():
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in tracked("*.py", "*.md")
        if path.exists()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if TRACKER_NUMBER.search(line)
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("page", markdown_pages(), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path):
    broken = [
        target
        for target, _anchor in LINK.findall(page.read_text())
        if "://" not in target
        and not target.startswith("mailto:")
        and not (page.parent / target).exists()
    ]
    assert not broken, f"{page.relative_to(ROOT)} links to missing {broken}"
