"""Re-execute the chapters that import `helpers` when the package's source changes.

jupyter-cache keys a notebook on its code cells only, so a change to
`helpers/` alone would leave the cached outputs (figures, glued numbers) of
the old code in the book. Before a chapter is parsed, this extension appends
a hidden code cell holding a hash of the package's source to every chapter
that imports `helpers`; the hash is part of the cache key, so editing the
package re-executes exactly those chapters. Readers never see the cell
(`remove-cell`), and the paired notebooks do not carry it.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

IMPORTS = re.compile(r"^\s*(import|from)\s+helpers\b", re.M)


def source_hash(package: Path) -> str:
    """sha256 over the package's source files (path and content), in a fixed order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in package.rglob("*") if p.suffix in (".py", ".csv")
                       and "__pycache__" not in p.parts):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def hash_cell(text: str, digest: str) -> str:
    """`text` with the hash cell appended, if it is a notebook importing helpers."""
    if not text.startswith("---\njupytext:") or not IMPORTS.search(text):
        return text
    return (text.rstrip("\n") + "\n\n```{code-cell} ipython3\n:tags: [remove-cell]\n\n"
            f"# helpers source {digest}: a new hash re-executes this chapter\n```\n")


def setup(app):
    digest = source_hash(Path(app.confdir) / "helpers")

    def _append(app, docname, source):
        source[0] = hash_cell(source[0], digest)

    def _outdated(app, env, added, changed, removed):
        # Sphinx re-reads only edited sources: a new hash makes the chapters
        # that import helpers outdated too (then myst-nb's cache key changes).
        if getattr(env, "helpers_source_hash", None) == digest:
            return []
        env.helpers_source_hash = digest
        return [doc for doc in env.found_docs
                if hash_cell(Path(env.doc2path(doc)).read_text(), digest) != Path(
                    env.doc2path(doc)).read_text()]

    app.connect("source-read", _append)
    app.connect("env-get-outdated", _outdated)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
