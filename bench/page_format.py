"""What every block of docs/PERFORMANCE.md is made of: the benchmarks' JSON records
(``Results``) and the Markdown they become (tables, figures with units)."""

from __future__ import annotations

import json
from pathlib import Path


def table(header: list[str], rows: list[list[str]], text_columns: int = 1) -> str:
    """A Markdown table: the first ``text_columns`` columns left-aligned, figures right."""
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i < text_columns else "---:" for i in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def num(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def ratio(value: float) -> str:
    return f"{value:.2f}x"


def pct(value: float, digits: int = 1) -> str:
    return f"{100 * value:.{digits}f}%"


class Results:
    """The JSON records of one results directory, by benchmark name."""

    def __init__(self, directory: Path) -> None:
        self.records = {
            p.stem: json.loads(p.read_text()) for p in sorted(Path(directory).glob("*.json"))
        }

    def figures(self, name: str) -> dict | None:
        record = self.records.get(name)
        return record["figures"] if record else None


def missing(name: str) -> str:
    return f"_Not measured: `bench/results/{name}.json` is missing; run `make bench`._\n"
