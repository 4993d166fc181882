"""Print each chapter's execution time at the end of the build.

myst-nb executes the chapters through jupyter-cache, which records how long
each execution took. At the end of the build this extension prints, per
chapter, the seconds of its latest execution and whether it ran in this
build (cold) or came from the cache, and the total executed now.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)


def chapter_times(cache_path: Path, since: datetime | None = None) -> list[tuple[str, float, bool]]:
    """`(chapter, seconds, executed since `since`)` for the latest record of each chapter."""
    from jupyter_cache import get_cache

    latest = {}
    for record in get_cache(str(cache_path)).list_cache_records():
        name = Path(record.uri).stem
        if name not in latest or record.created > latest[name].created:
            latest[name] = record
    return [(name, float((r.data or {}).get("execution_seconds", float("nan"))),
             since is not None and r.created >= since)
            for name, r in sorted(latest.items())]


def _started(app) -> None:
    # jupyter-cache stamps its records with naive UTC times.
    app.build_times_start = datetime.now(timezone.utc).replace(tzinfo=None)


def _report(app, exception) -> None:
    if exception is not None:
        return
    path = Path(app.config.nb_execution_cache_path or Path(app.outdir).parent / ".jupyter_cache")
    if not path.exists():
        return
    rows = chapter_times(path, getattr(app, "build_times_start", None))
    now = sum(seconds for _, seconds, fresh in rows if fresh)
    lines = [f"  {name:<24} {seconds:7.1f} s  {'executed now' if fresh else 'from the cache'}"
             for name, seconds, fresh in rows]
    wall = getattr(app, "parallel_execution_seconds", None)  # _ext/parallel_execute.py
    side = (f"; {wall / 60:.1f} min of wall time for those executed side by side"
            if wall else "")
    logger.info("chapter execution times (jupyter-cache):\n" + "\n".join(lines)
                + f"\n  executed in this build: {now:.0f} s ({now / 60:.1f} min){side}")


def setup(app):
    app.connect("builder-inited", _started)
    app.connect("build-finished", _report)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
