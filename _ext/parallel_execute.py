"""Execute the chapters missing from the cache several at a time, before Sphinx reads them.

myst-nb executes the chapters one after another while Sphinx reads them. On two
cores much of a chapter's time runs on one of them (Python in shap, LIME,
Alibi, scikit-image between TensorFlow calls), so two chapters at a time finish
sooner than one after the other. Before the read, this extension executes every
chapter that jupyter-cache does not hold yet, `xai_execution_jobs` at a time,
each in its own kernel, exactly as myst-nb would (the same notebook, after the
`source-read` handlers such as helpers_hash, so the same cache key, and the same
working folder), and stores each successful run in the cache, where myst-nb then
finds it. Chapters listed in `xai_execution_alone` (those that measure their own
throughput) are left to myst-nb, which executes them alone. A chapter that fails
is not stored: myst-nb executes it again and reports the failure as usual (`-W`
fails the build).

Chapters that need the same trained model wait for each other through
`helpers.models.train_or_load`'s lock instead of training it twice. Each kernel
keeps TensorFlow's own threads: side by side, training gains nothing (the
CIFAR-10 model took 1,005 s beside another chapter, 550 s alone), and one
thread per kernel made it slower still (the marked FashionMNIST model 5.2 min
against 3.8 min); the gain is in the Python between model calls.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import suppress
from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)


def _missing(app, env, docnames) -> list[tuple[str, Path, object]]:
    """`(docname, path, notebook)` of the chapters to read that the cache does not hold
    and that may run beside another."""
    from jupyter_cache import get_cache
    from myst_nb.core.read import create_nb_reader

    nb_config = env.mystnb_config
    cache = get_cache(nb_config.execution_cache_path or ".jupyter_cache")
    missing = []
    for docname in docnames:
        path = Path(env.doc2path(docname))
        if path.suffix != ".md" or path.stem in app.config.xai_execution_alone:
            continue
        source = [path.read_text()]
        app.emit("source-read", docname, source)  # as Sphinx does before parsing
        reader = create_nb_reader(str(path), env.myst_config, nb_config, source[0])
        if reader is None:
            continue
        notebook = reader.read(source[0])
        with suppress(KeyError):
            cache.match_cache_notebook(notebook)
            continue
        missing.append((docname, path, notebook))
    return missing


def _ordered(missing: list, first: list[str]) -> list:
    """The chapters named in `first` (the longest, measured) in that order, then the rest."""
    rank = {name: i for i, name in enumerate(first)}
    return sorted(missing, key=lambda item: rank.get(Path(item[0]).name, len(rank)))


def _execute(path: Path, notebook, timeout: int | None):
    """Execute `notebook` in its chapter's folder, as myst-nb's cache mode does."""
    from jupyter_cache.executors.utils import single_nb_execution

    try:
        return single_nb_execution(notebook, cwd=str(path.parent), timeout=timeout,
                                   allow_errors=False, meta_override=True)
    except Exception as error:  # e.g. a dead kernel: left for myst-nb to report
        return error


def _prefill(app, env, docnames) -> None:
    jobs = app.config.xai_execution_jobs
    if jobs < 2 or env.mystnb_config.execution_mode != "cache":
        return
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    missing = _ordered(_missing(app, env, docnames), app.config.xai_execution_first)
    if len(missing) < 2:
        return  # nothing to overlap: myst-nb executes it
    cache = get_cache(env.mystnb_config.execution_cache_path or ".jupyter_cache")
    logger.info(f"executing {len(missing)} chapters, {jobs} at a time")
    start = time.perf_counter()
    timeout = env.mystnb_config.execution_timeout
    with ThreadPoolExecutor(jobs) as pool:
        running = {pool.submit(_execute, path, notebook, timeout): (docname, path)
                   for docname, path, notebook in missing}
        for done in as_completed(running):
            docname, path = running[done]
            result = done.result()
            if isinstance(result, Exception) or result.err is not None:
                logger.info(f"  {docname}: failed; myst-nb executes it again and reports it")
                continue
            cache.cache_notebook_bundle(
                CacheBundleIn(result.nb, str(path), data={"execution_seconds": result.time}),
                check_validity=False, overwrite=True)
            logger.info(f"  {docname}: executed in {result.time:.0f} s")
    app.parallel_execution_seconds = time.perf_counter() - start
    logger.info(f"executed {len(missing)} chapters in "
                f"{app.parallel_execution_seconds / 60:.1f} min of wall time")


def setup(app):
    app.add_config_value("xai_execution_jobs", 2, "env", int)
    app.add_config_value("xai_execution_first", [], "env", list)
    app.add_config_value("xai_execution_alone", [], "env", list)
    app.connect("env-before-read-docs", _prefill)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
