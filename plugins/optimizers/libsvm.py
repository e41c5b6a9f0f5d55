"""Reading LIBSVM/svmlight files, the format the field's standard datasets ship in.

One example per line: ``label index:value index:value ...`` with 1-based,
increasing feature indices; ``# comments`` and ``qid:`` fields are allowed.
A file whose smallest index is 0 is read as 0-based. ``.gz``, ``.bz2`` and
``.xz`` files are decompressed on the fly. Any malformed line is a
:class:`~harness.errors.BenchUsageError` naming the file and the line.

The parsed arrays are cached on disk (joblib.Memory, keyed on the file's
content hash), so the many MPI jobs of a sweep parse a file once.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import IO, Any

from harness.errors import BenchUsageError
from harness.locations import cache_root
from harness.paths import input_file



def cache_dir(kind: str) -> Path:
    """``<cache root>/<kind>`` (:func:`harness.locations.cache_root`)."""
    return cache_root() / kind


def _open(path: Path) -> IO[bytes]:
    suffix = path.suffix.lower()
    if suffix == ".gz":
        import gzip

        return gzip.open(path, "rb")
    if suffix == ".bz2":
        import bz2

        return bz2.open(path, "rb")
    if suffix == ".xz":
        import lzma

        return lzma.open(path, "rb")
    return open(path, "rb")


def file_hash(path: str | os.PathLike[str]) -> str:
    """SHA-256 of the file's bytes (what the parse cache is keyed on)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise BenchUsageError(f"cannot read LIBSVM file '{path}': {exc.strerror}") from None
    return digest.hexdigest()


def parse(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a LIBSVM file into CSR arrays: ``indptr, indices, data, labels, d``.

    Raises BenchUsageError with the line number for the first malformed line.
    """
    import numpy as np

    path = Path(path)
    indptr = [0]
    indices: list[int] = []
    values: list[float] = []
    labels: list[float] = []
    min_index = None
    try:
        fh = _open(path)
    except OSError as exc:
        raise BenchUsageError(f"cannot read LIBSVM file '{path}': {exc.strerror}") from None

    def bad(lineno: int, what: str) -> BenchUsageError:
        return BenchUsageError(f"bad LIBSVM file '{path}': line {lineno}: {what}")

    with fh:
        try:
            for lineno, raw in enumerate(fh, 1):
                line = raw.split(b"#", 1)[0].strip()
                if not line:
                    continue
                fields = line.split()
                try:
                    label = float(fields[0])
                except ValueError:
                    raise bad(lineno, f"label '{fields[0].decode(errors='replace')}' "
                                      "is not a number") from None
                previous = -1
                for field in fields[1:]:
                    key, sep, val = field.partition(b":")
                    if key == b"qid":
                        continue
                    text = field.decode(errors="replace")
                    if not sep:
                        raise bad(lineno, f"'{text}' is not index:value")
                    try:
                        index = int(key)
                        value = float(val)
                    except ValueError:
                        raise bad(lineno, f"'{text}' is not index:value") from None
                    if index < 0:
                        raise bad(lineno, f"negative feature index in '{text}'")
                    if index <= previous:
                        raise bad(lineno, f"feature indices must increase ('{text}' after "
                                          f"index {previous})")
                    previous = index
                    indices.append(index)
                    values.append(value)
                    if min_index is None or index < min_index:
                        min_index = index
                labels.append(label)
                indptr.append(len(indices))
        except (OSError, EOFError, ValueError) as exc:  # corrupt compressed stream
            raise BenchUsageError(f"cannot read LIBSVM file '{path}': {exc}") from None
    if not labels:
        raise BenchUsageError(f"LIBSVM file '{path}' holds no examples")
    offset = 0 if min_index == 0 else 1
    index_array = np.asarray(indices, dtype=np.int64) - offset
    d = int(index_array.max()) + 1 if index_array.size else 1
    return {
        "indptr": np.asarray(indptr, dtype=np.int64),
        "indices": index_array.astype(np.int32 if d < 2**31 else np.int64),
        "data": np.asarray(values, dtype=np.float64),
        "labels": np.asarray(labels, dtype=np.float64),
        "d": d,
        "zero_based": offset == 0,
    }


def _parse_cached(content_hash: str, path: str) -> dict[str, Any]:
    """joblib-cached ``parse``; the key is the content hash (the path is ignored)."""
    return parse(path)


def load(path: str | os.PathLike[str], use_cache: bool = True) -> dict[str, Any]:
    """Parse ``path`` once per content; later calls load the arrays from the cache."""
    path = input_file(path, "LIBSVM file")
    content = file_hash(path)
    if not use_cache:
        return parse(path)
    from joblib import Memory

    memory = Memory(cache_dir("libsvm"), verbose=0)
    cached = memory.cache(_parse_cached, ignore=["path"])
    return cached(content, str(path))
