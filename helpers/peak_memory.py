"""`python -m helpers.peak_memory [--interval S] [--out FILE] -- COMMAND ...`: peak memory.

Runs COMMAND and samples, every `interval` seconds, the resident memory (RSS) of
its process and of every descendant: for a book build, the Jupyter kernels that
execute the chapters and the Dask worker processes a chapter starts. Reports the
largest single process (which one, and when) and the largest sum over the tree,
in GB (10^9 bytes); the exit code is the command's. A descendant whose parent
exits stays tracked. Shared pages count in every process that maps them, so
the sum over the tree is an upper bound.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import psutil

from .sources import atomic_path

GB = 1e9
GONE = (psutil.NoSuchProcess, psutil.AccessDenied)  # exited, or not ours to read


@dataclass
class Report:
    """The peaks measured while a command ran, and how it ended."""

    command: list[str]
    returncode: int
    peak_process_bytes: int = 0
    peak_process_name: str = ""
    peak_process_at: float = 0.0  # seconds after the start
    peak_process_time: float = 0.0  # when, as time.time()
    peak_total_bytes: int = 0
    peak_total_processes: int = 0
    samples: int = 0
    interval: float = 0.5
    seconds: float = 0.0
    stdout: str | bytes | None = None
    stderr: str | bytes | None = None


def _children_by_parent() -> dict[int, list[int]]:
    """Every process's children, by parent pid, from one scan of the process table."""
    children = defaultdict(list)
    for proc in psutil.process_iter(["ppid"]):
        if proc.info["ppid"] is not None:
            children[proc.info["ppid"]].append(proc.pid)
    return children


def _track(known: dict[int, psutil.Process]) -> None:
    """Drop the processes in `known` that ended and add their descendants born since."""
    for pid, proc in list(known.items()):
        if not proc.is_running():  # also false if the pid now names another process
            del known[pid]
    children = _children_by_parent()
    stack = list(known)
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in known:
                try:
                    known[child] = psutil.Process(child)
                except GONE:
                    continue
                stack.append(child)


def _rss(known: dict[int, psutil.Process]) -> dict[int, int]:
    """The resident bytes of each process in `known` that can still be read."""
    sizes = {}
    for pid, proc in known.items():
        try:
            sizes[pid] = proc.memory_info().rss
        except GONE:
            pass
    return sizes


def _shorten(words: list[str], limit: int = 90) -> str:
    """A command line with programs and files by base name, cut to `limit` characters."""
    short = [os.path.basename(w) if w.startswith("/") and " " not in w else w for w in words]
    text = " ".join(short)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def describe(proc: psutil.Process, cwd: str | None = None) -> str:
    """What `proc` is: a Jupyter kernel, a spawned worker, or its shortened command line;
    with its pid, and its working directory when it differs from `cwd`."""
    try:
        words = proc.cmdline() or [proc.name()]
        where = proc.cwd()
        parent = proc.ppid()
    except GONE:
        return f"pid {proc.pid} (exited)"
    line = " ".join(words)
    if "ipykernel" in line:
        kind = "Jupyter kernel"
    elif "spawn_main" in line or "forkserver" in line:
        kind = f"worker process (multiprocessing, e.g. Dask) of pid {parent}"
    else:
        kind = _shorten(words)
    place = ""
    if cwd is not None and Path(where).resolve() != Path(cwd).resolve():
        inside = Path(where).resolve().is_relative_to(Path(cwd).resolve())
        place = f", in {os.path.relpath(where, cwd) if inside else where}"
    return f"{kind} (pid {proc.pid}{place})"


def _sample(known: dict[int, psutil.Process], report: Report, start: float, cwd: str) -> None:
    """One sample of the process tree: update the peaks in `report`."""
    _track(known)
    sizes = _rss(known)
    report.samples += 1
    now = time.time()
    if sizes and sum(sizes.values()) > report.peak_total_bytes:
        report.peak_total_bytes = sum(sizes.values())
        report.peak_total_processes = len(sizes)
    if sizes and max(sizes.values()) > report.peak_process_bytes:
        pid = max(sizes, key=sizes.get)
        report.peak_process_bytes = sizes[pid]
        report.peak_process_name = describe(known[pid], cwd)
        report.peak_process_at, report.peak_process_time = now - start, now


def measure(command: list[str], interval: float = 0.5, **popen: object) -> Report:
    """Run `command` (with `subprocess.Popen` keyword arguments, e.g. `capture_output=True,
    text=True, cwd=...`) and sample the RSS of its process tree every `interval` seconds."""
    if not command:
        raise ValueError("command: expected a program and its arguments, got nothing")
    if not interval > 0:
        raise ValueError(f"interval: expected seconds > 0, got {interval!r}")
    if popen.pop("capture_output", False):
        popen.update(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    cwd = os.path.abspath(popen.get("cwd") or os.getcwd())
    try:
        proc = subprocess.Popen(command, **popen)
    except (FileNotFoundError, PermissionError) as error:
        raise ValueError(f"command: cannot run {command[0]!r} ({error.strerror}); "
                         "expected an executable file or a program on PATH") from error
    report = Report(command=list(command), returncode=-1, interval=interval)
    known = {proc.pid: psutil.Process(proc.pid)}
    start = time.time()
    with proc:
        try:
            while True:
                _sample(known, report, start, cwd)
                try:  # reads the pipes as it waits, so a chatty command never blocks
                    report.stdout, report.stderr = proc.communicate(timeout=interval)
                    break
                except subprocess.TimeoutExpired:
                    continue
        except BaseException:
            proc.kill()
            raise
    report.returncode = proc.returncode
    report.seconds = time.time() - start
    return report


def format_report(report: Report) -> str:
    """The report in a few lines: the largest process, the largest tree, the exit code."""
    return (f"peak memory (RSS) of `{_shorten(report.command, 120)}`\n"
            f"  one process: {report.peak_process_bytes / GB:5.2f} GB  "
            f"{report.peak_process_name or '-'}, at {report.peak_process_at:.0f} s\n"
            f"  whole tree:  {report.peak_total_bytes / GB:5.2f} GB  "
            f"({report.peak_total_processes} processes)\n"
            f"  {report.samples} samples every {report.interval:g} s over "
            f"{report.seconds:.0f} s; exit code {report.returncode}\n")


def write_report(text: str, path: Path) -> None:
    """Write `text` to `path` through a temporary file beside it."""
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(text)


def main(argv: list[str] | None = None) -> int:
    """Run the command, print the report (and write it to --out); return the command's code."""
    parser = argparse.ArgumentParser(
        prog="python -m helpers.peak_memory",
        description="Peak resident memory of a command and all its descendants.")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between samples")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    parser.add_argument("command", nargs="+", help="the command, after `--`")
    args = parser.parse_args(argv)
    try:
        report = measure(args.command, args.interval)
    except ValueError as error:
        parser.error(str(error))
    text = format_report(report)
    print(text, end="", file=sys.stderr)
    if args.out:
        write_report(text, args.out)
    code = report.returncode
    return 128 - code if code < 0 else code  # killed by signal N: the shell's 128 + N


if __name__ == "__main__":
    sys.exit(main())
