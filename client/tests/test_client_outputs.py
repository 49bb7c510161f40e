"""What the commands print: ``--format text|json|csv``, the program's and the model's
``--version``, and the progress bar on a terminal's stderr."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import subprocess
import sys

import pytest
from click.testing import CliRunner
from toy_serving import MODEL_VERSION, grey_image, level_for

from dann_client.cli import cli
from dann_client.progress import Progress


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def table(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def digits(tmp_path):
    return [grey_image(tmp_path / f"{label}.png", level_for(label)) for label in (2, 7, 9)]


# --- formats ---------------------------------------------------------------------------


def test_csv_has_a_header_a_row_per_image_and_errors_as_rows(toy_server, digits, tmp_path):
    _, address = toy_server
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    paths = [str(digits[0]), str(broken), str(digits[1]), str(tmp_path / "gone.png")]
    result = run("predict", *paths, "--server", address, "--format", "csv")
    assert result.exit_code == 1
    header = result.stdout.splitlines()[0].split(",")
    assert header == [
        "path",
        "label",
        "confidence",
        *(f"probability_{digit}" for digit in range(10)),
        "error",
    ]
    rows = table(result.stdout)
    assert [row["path"] for row in rows] == paths  # in input order, failures included
    assert [row["label"] for row in rows] == ["2", "", "7", ""]
    assert rows[0]["confidence"] == "0.910000" and rows[0]["probability_2"] == "0.910000"
    assert rows[1]["error"] == "not an image file Pillow can read"
    assert rows[3]["error"] == "no such file or directory"
    assert rows[0]["error"] == rows[2]["error"] == ""
    assert result.stderr.count("\n") == 2  # the usual stderr lines are still there


def test_csv_of_domains_with_top_k(toy_server, tmp_path):
    _, address = toy_server
    bright = grey_image(tmp_path / "b.png", 230)
    result = run("domain", str(bright), "--server", address, "--format", "csv", "--top-k", "1")
    assert result.exit_code == 0, result.output
    assert table(result.stdout) == [
        {
            "path": str(bright),
            "domain": "1",
            "domain_name": "target",
            "confidence": "0.950000",
            "probability_source": "0.050000",
            "probability_target": "0.950000",
            "top1": "target",
            "top1_probability": "0.950000",
            "error": "",
        }
    ]


def test_csv_columns_line_up_whatever_top_k(toy_server, digits):
    _, address = toy_server
    result = run("domain", str(digits[0]), "--server", address, "--format", "csv", "--top-k", "5")
    assert result.exit_code == 0, result.output
    header, row = csv.reader(io.StringIO(result.stdout))
    assert len(header) == len(row) and header[-3:] == ["top2", "top2_probability", "error"]


def test_an_empty_csv_still_has_its_header(tmp_path):
    result = run("predict", str(tmp_path / "nothing.png"), "--format", "csv")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0].startswith("path,label,confidence,")


def test_json_flag_is_format_json_and_they_must_agree(toy_server, digits):
    _, address = toy_server
    flag = run("predict", *map(str, digits), "--server", address, "--json")
    option = run("predict", *map(str, digits), "--server", address, "--format", "json")
    assert flag.exit_code == option.exit_code == 0
    assert flag.stdout == option.stdout
    assert [json.loads(line)["label"] for line in flag.stdout.splitlines()] == [2, 7, 9]
    both = run("predict", str(digits[0]), "--json", "--format", "csv")
    assert both.exit_code == 2 and "--json and --format csv disagree" in both.stderr


def test_status_and_metadata_as_csv(toy_server):
    _, address = toy_server
    status = run("status", "--server", address, "--format", "csv")
    assert table(status.stdout) == [
        {
            "model": "dann",
            "version": str(MODEL_VERSION),
            "state": "AVAILABLE",
            "error_code": "OK",
            "error_message": "",
        }
    ]
    metadata = run("metadata", "--server", address, "--format", "csv")
    rows = table(metadata.stdout)
    images = [r for r in rows if r["signature"] == "predict_label" and r["kind"] == "input"]
    assert images == [
        {
            "model": "dann",
            "version": str(MODEL_VERSION),
            "signature": "predict_label",
            "method": "tensorflow/serving/predict",
            "kind": "input",
            "tensor": "images",
            "dtype": "DT_FLOAT",
            "shape": "[-1, 32, 32, 3]",
        }
    ]
    assert len(rows) == 3 * 3  # three signatures, one input and two outputs each


# --- --version -------------------------------------------------------------------------


def test_version_before_a_command_is_the_programs():
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("dann-client, version ")


@pytest.mark.parametrize("option", ["--model-version", "--version"])
def test_after_a_command_version_is_the_models(toy_server, digits, option):
    _, address = toy_server
    found = run("predict", str(digits[0]), "--server", address, option, str(MODEL_VERSION))
    assert found.exit_code == 0, found.output
    missing = run("status", "--server", address, option, "99")
    assert missing.exit_code == 4 and "version 99 not found" in missing.stderr


def test_help_says_which_version_is_which():
    assert "--model-version, --version N" in run("predict", "--help").stdout
    assert "program's version" in run("status", "--help").stdout
    assert "Show dann-client's version" in run("--help").stdout


# --- the progress bar ------------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bar_shows_after_the_delay_and_lines_pass_above_it():
    now = [0.0]
    screen = FakeTerminal()
    progress = Progress(screen, 200, delay=1.0, interval=0.1, clock=lambda: now[0])
    assert progress.enabled
    progress.advance(10)
    progress.message("a.png: cannot decode image")
    assert screen.getvalue() == "a.png: cannot decode image\n"  # no bar in the first second
    now[0] = 2.0
    progress.advance(90)
    assert screen.getvalue().endswith("100/200 [############------------]  50%  50/s  ETA 2s")
    progress.message("b.png: empty file")
    assert "\r\x1b[Kb.png: empty file\n\r\x1b[K100/200 [" in screen.getvalue()
    now[0] = 2.05
    progress.advance(1)  # within the interval: not redrawn
    assert "101/200" not in screen.getvalue()
    now[0] = 4.0
    progress.advance(99)
    progress.close()
    assert screen.getvalue().endswith("200/200 [########################] 100%  50/s  ETA 0s\n")


def test_no_bar_off_a_terminal_or_with_an_unknown_total():
    quiet = io.StringIO()
    progress = Progress(quiet, 10, delay=0)
    progress.advance(10)
    progress.close()
    assert quiet.getvalue() == ""
    counting = Progress(FakeTerminal(), None, delay=0, clock=lambda: 2.0)
    counting._start = 0.0
    counting.advance(500)
    assert counting.stream.getvalue().endswith("500 images  250/s")
    assert Progress.wanted(FakeTerminal(), io.StringIO())
    assert not Progress.wanted(FakeTerminal(), FakeTerminal())  # results show progress
    assert not Progress.wanted(io.StringIO(), io.StringIO())


def _client_on_a_terminal(*args: str) -> tuple[subprocess.CompletedProcess, str]:
    """Run the client with stderr on a pseudo-terminal, stdout on a pipe."""
    leader, follower = pty.openpty()
    code = "import sys; from dann_client.cli import main; sys.argv[0] = 'dann-client'; main()"
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=follower
        )
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal's other end closed
                break
            if not chunk:
                break
            chunks.append(chunk)
        stdout, _ = process.communicate(timeout=60)
    finally:
        os.close(leader)
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout.decode())
    return result, b"".join(chunks).decode(errors="replace")


def test_a_long_run_shows_a_bar_on_a_terminal(toy_server, digits):
    servicer, address = toy_server
    servicer.delay = 0.4  # 9 images one by one, three at a time: about 1.2 s
    paths = [str(p) for p in digits * 3]
    result, terminal = _client_on_a_terminal(
        "predict", *paths, "--server", address, "--batch-size", "1"
    )
    assert result.returncode == 0, terminal
    assert len(result.stdout.splitlines()) == 9  # the results are untouched
    assert "\r" in terminal and terminal.rstrip().endswith("ETA 0s")
    assert "9/9 [########################] 100%" in terminal
    piped = subprocess.run(
        [sys.executable, "-m", "dann_client", "predict", *paths, "--server", address],
        capture_output=True,
        text=True,
    )
    assert piped.returncode == 0 and piped.stderr == ""
