"""External files (`sources.csv`): from a mirror when ``XAI_BOOK_MIRROR`` names
one, else from their canonical URLs through ``keras.utils.get_file``; the
cache and atomic writes every module uses."""
from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, NamedTuple

MIRROR_ENV = "XAI_BOOK_MIRROR"
CACHE_ENV = "XAI_BOOK_CACHE"

SOURCES_FILE = Path(__file__).with_name("sources.csv")


class Source(NamedTuple):
    """One external file the book reads: where it comes from, and its checks.

    `url` is the canonical public source (inside the archive at `url` when
    `member` is set); `sha256` checks what comes from it. `mirror` is the
    file's path in an offline mirror, checked against `mirror_sha256` (other
    bytes where `note` says so).
    """

    key: str
    url: str
    sha256: str
    mirror: str
    mirror_sha256: str
    member: str
    note: str


@functools.cache
def sources() -> dict[str, Source]:
    """The table of every external file the book reads (`helpers/sources.csv`)."""
    import csv

    with open(SOURCES_FILE, newline="") as f:
        return {row["key"]: Source(**row) for row in csv.DictReader(f)}


class DataUnavailableError(RuntimeError):
    """Neither the mirror nor Keras's download could deliver a file."""


class ChecksumError(RuntimeError):
    """A mirror file does not match its published SHA-256."""


def mirror_root() -> Path | None:
    """The mirror folder named by XAI_BOOK_MIRROR, or None when unset."""
    value = os.environ.get(MIRROR_ENV)
    if not value:
        return None
    root = Path(value).expanduser().resolve()
    if not root.is_dir():
        raise DataUnavailableError(
            f"{MIRROR_ENV}={value!r} is not a folder (looked at {root}). Point "
            "it at a folder laid out like ../shared (data/..., models/...), "
            "preferably as an absolute path, or unset it.")
    return root


def cache_dir(*parts: str) -> Path:
    """A folder under the cache (XAI_BOOK_CACHE, default ~/.cache/xai-book)."""
    value = os.environ.get(CACHE_ENV)
    if value:
        root = Path(value).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))
        root = Path(xdg) / "xai-book"
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temporary path beside `dest`, renamed to `dest` on success."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=dest.parent, prefix=f".{dest.stem}.", suffix=dest.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)


def sha256(path: Path) -> str:
    """The SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def mirror_file(relpath: str) -> Path | None:
    """The checked mirror copy of `relpath`; None if no mirror or no file."""
    root = mirror_root()
    if root is None or not (root / relpath).is_file():
        return None
    path = root / relpath
    expected = next((src.mirror_sha256 for src in sources().values()
                     if src.mirror == relpath), None)
    if expected and sha256(path) != expected:
        raise ChecksumError(
            f"{path} does not match its SHA-256 ({expected[:12]}...): the "
            "mirror copy is damaged. Restore it from the original mirror.")
    return path


def _source(key: str) -> Source:
    if key not in sources():
        raise ValueError(f"key must be one of the {len(sources())} files of "
                         f"{SOURCES_FILE.name}, got {key!r}")
    return sources()[key]


def _download(src: Source, cache_subdir: str = "datasets") -> Path:
    """`keras.utils.get_file` of the canonical URL: hash-checked, in Keras's cache."""
    import keras

    root = mirror_root()
    try:
        return Path(keras.utils.get_file(
            fname=Path(src.url).name, origin=src.url, cache_subdir=cache_subdir,
            file_hash=src.sha256 or None))
    except Exception as error:  # Keras raises bare Exception offline
        looked = (f"{root / src.mirror} is not there" if root and src.mirror
                  else f"{MIRROR_ENV} is set to a folder without it" if root
                  else f"no mirror ({MIRROR_ENV} is unset)")
        raise DataUnavailableError(
            f"Cannot load {src.key!r} from {src.url} ({type(error).__name__}: "
            f"{error}); {looked}. Fix: connect to the internet once (Keras keeps "
            f"the file in its cache), or set {MIRROR_ENV} to a folder that holds "
            f"{src.mirror or 'it'}.") from None


def fetch(key: str, cache_subdir: str = "datasets") -> Path:
    """The local path of external file `key` (a row of `sources()`): the
    mirror's checked copy when a mirror holds it, else the canonical download."""
    src = _source(key)
    if src.member:
        raise ValueError(f"key {key!r} is a member of an archive: use fetch_bytes")
    local = mirror_file(src.mirror) if src.mirror else None
    return local or _download(src, cache_subdir)


def fetch_bytes(key: str) -> bytes:
    """The bytes of external file `key`, from the mirror, the canonical file, or
    the canonical archive that holds it, checked against their SHA-256."""
    src = _source(key)
    local = mirror_file(src.mirror) if src.mirror else None
    if local is not None:
        return local.read_bytes()
    if not src.member:
        return fetch(key).read_bytes()
    import zipfile

    archive = next(a for a in sources().values() if a.url == src.url and not a.member)
    with zipfile.ZipFile(_download(archive)) as z:
        data = z.read(src.member)
    if hashlib.sha256(data).hexdigest() != src.sha256:
        raise ChecksumError(f"{src.member} in {src.url} does not match its SHA-256 "
                            f"({src.sha256[:12]}...)")
    return data


