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
    """The installed version of distribution ``dist``; nothing is imported.

    Reads the ``Version:`` header of the distribution's metadata and stops at the
    end of the headers: ``importlib.metadata.version`` parses the whole file, long
    description included (milliseconds for torch or numpy, on every run).
    """
    try:
        found = metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        return None
    for line in (found.read_text("METADATA") or found.read_text("PKG-INFO") or "").splitlines():
        if not line.strip():
            break  # the headers end at the first blank line
        if line.lower().startswith("version:"):
            return line.split(":", 1)[1].strip()
    return found.version


GIT_STATUS = ["git", "status", "--porcelain=v2", "--branch", "--untracked-files=no"]
_probes: dict[str | None, subprocess.Popen] = {}  # cwd -> a git status already under way


def start_git_probe(path: str | None = None) -> None:
    """Start the ``git status`` that :func:`git_commit` will read, so it runs meanwhile.

    Called when a command opens the store to write: git then runs on another core
    while the model is simulated, instead of after it.
    """
    if path in _probes:
        return
    try:
        _probes[path] = subprocess.Popen(GIT_STATUS, cwd=path, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, text=True)
    except OSError:
        pass


def git_commit(path: str | None = None) -> str | None:
    """The commit of the git work tree at ``path`` (default: cwd), '+dirty' when modified.

    One ``git status --porcelain=v2 --branch`` gives both (its ``# branch.oid``
    header is ``git rev-parse HEAD``; any other line is a modified tracked file).
    """
    probe = _probes.pop(path, None)
    try:
        if probe is None:
            start_git_probe(path)
            probe = _probes.pop(path)
        out, _ = probe.communicate(timeout=5)
    except (KeyError, OSError, subprocess.SubprocessError):
        if probe is not None:
            probe.kill()
        return None
    if probe.returncode != 0:
        return None
    lines = out.splitlines()
    oid = next((l.split()[2] for l in lines if l.startswith("# branch.oid ")), None)
    if oid is None or oid == "(initial)":
        return None  # no commit yet
    return oid + ("+dirty" if any(l and not l.startswith("#") for l in lines) else "")


def capture(plugin: str | None = None) -> dict[str, Any]:
    """Host, CPU, software versions, git commit, producing plugin and a UTC timestamp.

    Versions are read from package metadata, so capturing never imports torch.
    """
    from harness import version

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
        "harness": version.__version__,
        "git_commit": git_commit(),
        "plugin": plugin,
        "timestamp_utc": utc_now(),
    }
