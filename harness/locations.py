"""Where bench keeps what it can rebuild: one root for every cache, so a user moves all of
them with one variable (``$BENCH_CACHE``) and XDG settings are honoured everywhere."""
from __future__ import annotations

import os
from pathlib import Path

CACHE_ROOT_ENV = "BENCH_CACHE"


def cache_root() -> Path:
    """``$BENCH_CACHE``, else ``$XDG_CACHE_HOME/bench``, else ``~/.cache/bench``."""
    root = os.environ.get(CACHE_ROOT_ENV, "").strip()
    if root:
        return Path(root).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join(Path.home(), ".cache")
    return Path(base).expanduser() / "bench"
