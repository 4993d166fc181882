"""The book's Sphinx extensions (_ext/): chapter times and the helpers hash."""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "_ext"))

from build_times import chapter_times  # noqa: E402
from helpers_hash import hash_cell, source_hash  # noqa: E402

CHAPTER = "---\njupytext:\n  formats: md\n---\n\n# A\n\n```{code-cell} ipython3\n{code}\n```\n"


def test_the_hash_changes_with_any_source_file(tmp_path):
    package = tmp_path / "helpers"
    (package / "methods").mkdir(parents=True)
    (package / "__init__.py").write_text("X = 1\n")
    (package / "methods" / "a.py").write_text("Y = 1\n")
    first = source_hash(package)
    assert source_hash(package) == first
    (package / "methods" / "a.py").write_text("Y = 2\n")
    assert source_hash(package) != first
    (package / "methods" / "a.py").write_text("Y = 1\n")
    (package / "methods" / "__pycache__").mkdir()
    (package / "methods" / "__pycache__" / "a.pyc").write_bytes(b"\0")
    assert source_hash(package) == first  # compiled files do not count


def test_the_hash_cell_goes_to_chapters_importing_helpers_only():
    chapter = CHAPTER.replace("{code}", "import helpers  # first")
    changed = hash_cell(chapter, "abc123")
    assert changed.startswith(chapter.rstrip("\n"))
    assert changed.rstrip().endswith("# helpers source abc123: a new hash re-executes "
                                      "this chapter\n```")
    assert ":tags: [remove-cell]" in changed[len(chapter):]
    assert hash_cell(chapter, "abc124") != changed
    for other in (CHAPTER.replace("{code}", "import numpy"), "# A page\n\nimport helpers\n"):
        assert hash_cell(other, "abc123") == other  # no helpers, or not a notebook


def test_every_chapter_gets_the_hash_cell():
    for path in sorted((ROOT / "book").glob("*.md")):
        text = path.read_text()
        if text.startswith("---\njupytext:"):
            assert hash_cell(text, "x") != text, f"{path.name} does not import helpers"


@pytest.mark.book
def test_chapter_times_read_the_build_cache():
    """After test_book's build: a time for every executed chapter."""
    cache = ROOT / "_build" / ".jupyter_cache"
    rows = chapter_times(cache, datetime(1970, 1, 1))
    chapters = {p.stem for p in (ROOT / "book").glob("*.md")
                if p.read_text().startswith("---\njupytext:")}
    assert chapters <= {name for name, _, _ in rows}
    assert all(seconds > 0 and fresh for _, seconds, fresh in rows)


NOTEBOOK = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# {name}

```{{code-cell}} ipython3
import time
from pathlib import Path

start = time.time()
time.sleep(3)
Path("{name}.times").write_text(f"{{start}} {{time.time()}}")
{extra}
```
"""


def _sphinx_project(folder: Path, chapters: dict[str, str]) -> Path:
    """A Sphinx project executing `chapters` (name -> extra code) through myst-nb's cache."""
    (folder / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT / '_ext')!r})\n"
        "extensions = ['myst_nb', 'parallel_execute']\n"
        "nb_execution_mode = 'cache'\nnb_execution_show_tb = True\n"
        f"nb_execution_cache_path = {str(folder / 'cache')!r}\n"
        "exclude_patterns = ['_build', 'cache', 'jupyter_execute']\n")
    (folder / "index.md").write_text("# Book\n\n```{toctree}\n" + "\n".join(chapters) + "\n```\n")
    for name, extra in chapters.items():
        (folder / f"{name}.md").write_text(NOTEBOOK.format(name=name, extra=extra))
    return folder


def _build(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html",
                           str(folder), str(folder / "_build")], capture_output=True,
                          text=True, cwd=folder, timeout=600)


def test_chapters_missing_from_the_cache_run_side_by_side(tmp_path):
    project = _sphinx_project(tmp_path, {"one": "", "two": "", "three": ""})
    result = _build(project)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert "executing 3 chapters, 2 at a time" in log
    assert log.count("Using cached notebook") == 3  # myst-nb executed none of them itself
    spans = sorted(tuple(map(float, (project / f"{name}.times").read_text().split()))
                   for name in ("one", "two", "three"))
    assert spans[1][0] < spans[0][1], spans  # the first two ran at the same time
    again = _build(project)  # all cached now: nothing executes
    assert again.returncode == 0 and "executing" not in again.stdout


def test_a_chapter_failing_side_by_side_fails_the_build(tmp_path):
    project = _sphinx_project(tmp_path, {"good": "", "bad": "raise ValueError('planted')"})
    result = _build(project)
    log = result.stdout + result.stderr
    assert "bad: failed; myst-nb executes it again and reports it" in log
    assert result.returncode != 0 and "planted" in log  # myst-nb's report, with -W
    assert log.count("Using cached notebook") == 1
