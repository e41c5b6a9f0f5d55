"""The environment every stored result carries, so runs can be compared over time."""
from __future__ import annotations

import os
import platform
import subprocess
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata
from typing import Any


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@lru_cache(maxsize=None)
def package_version(dist: str) -> str | None:
    """The installed version of distribution ``dist`` (from its metadata; nothing imported)."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def git_commit(path: str | None = None) -> str | None:
    """The commit of the git work tree at ``path`` (default: cwd), '+dirty' when modified."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=path, capture_output=True, text=True, timeout=5,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def capture(plugin: str | None = None) -> dict[str, Any]:
    """Host, CPU, software versions, git commit, producing plugin and a UTC timestamp.

    Versions are read from package metadata, so capturing never imports torch.
    """
    from harness import __version__

    return {
        "host": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": package_version("torch"),
        "mpi4py": package_version("mpi4py"),
        "numpy": package_version("numpy"),
        "harness": __version__,
        "git_commit": git_commit(),
        "plugin": plugin,
        "timestamp_utc": utc_now(),
    }
