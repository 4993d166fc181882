"""The book's Sphinx extensions (_ext/): chapter times and the helpers hash."""
from __future__ import annotations

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
