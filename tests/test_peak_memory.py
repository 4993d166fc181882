"""`helpers.peak_memory`: the peak RSS of a command's whole process tree."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers.peak_memory import measure

MB = 1e6
ROOT = Path(__file__).resolve().parents[1]


def python(code: str) -> list[str]:
    """This Python running `code`."""
    return [sys.executable, "-c", code]


def test_the_peak_process_is_a_grandchild_and_the_tree_sums_its_processes(tmp_path):
    """The child holds 100 MB and runs a grandchild holding 300 MB: the largest process
    is the grandchild (found through the child), the tree holds both."""
    (tmp_path / "grandchild.py").write_text(
        "import time\nx = bytearray(300_000_000)\ntime.sleep(1.5)\n")
    child = python("import subprocess, sys\n"
                   "held = bytearray(100_000_000)\n"
                   "subprocess.run([sys.executable, 'grandchild.py'], check=True)\n"
                   "print('done')")
    report = measure(child, interval=0.1, cwd=tmp_path, capture_output=True, text=True)
    assert report.returncode == 0, report.stderr
    assert report.stdout == "done\n"
    assert 250 * MB <= report.peak_process_bytes <= 600 * MB, report
    assert "grandchild.py" in report.peak_process_name, report.peak_process_name
    assert report.peak_total_bytes >= report.peak_process_bytes + 90 * MB, report
    assert report.peak_total_processes >= 2
    assert report.samples >= 10


def test_the_exit_code_passes_through_and_a_small_command_measures_small():
    report = measure(python("import sys; sys.exit(3)"), interval=0.1)
    assert report.returncode == 3
    assert report.peak_process_bytes < 100 * MB


def test_a_missing_command_is_one_clear_error():
    with pytest.raises(ValueError, match="command: cannot run 'no-such-command-xyz'"):
        measure(["no-such-command-xyz", "--help"])
    with pytest.raises(ValueError, match="interval"):
        measure(python("pass"), interval=0)


def test_the_command_line_prints_writes_the_report_and_returns_the_code(tmp_path):
    out = tmp_path / "peak.txt"
    result = subprocess.run(
        [sys.executable, "-m", "helpers.peak_memory", "--interval", "0.1", "--out", str(out),
         "--", *python("import sys; x = bytearray(200_000_000); sys.exit(3)")],
        capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 3, result.stderr
    text = out.read_text()
    assert text in result.stderr
    assert "one process:" in text and "whole tree:" in text and "exit code 3" in text
    missing = subprocess.run([sys.executable, "-m", "helpers.peak_memory", "--", "no-such-xyz"],
                             capture_output=True, text=True, cwd=ROOT)
    assert missing.returncode == 2
    assert "cannot run 'no-such-xyz'" in missing.stderr
    assert "Traceback" not in missing.stderr
