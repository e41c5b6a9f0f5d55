"""Paths the user gives, checked before any work starts.

Every way a path can be wrong gets its own one-line message: a directory where
a file is expected, a missing parent folder, a file where a folder is
expected, a location that cannot be written or read, a program that cannot be
run. Nothing here creates folders unless the caller says the user expects it
(``create_parents``); then it says so on stderr.
"""
from __future__ import annotations

import functools
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Callable

from harness.errors import BenchUsageError


def _path(path: str | os.PathLike[str], what: str) -> Path:
    if not str(path).strip():
        raise BenchUsageError(f"{what}: the path is empty")
    if "\0" in str(path):
        raise BenchUsageError(f"{what} {str(path)!r}: a path cannot contain a NUL character")
    try:
        return Path(path).expanduser()
    except RuntimeError:  # ~name of a user that does not exist
        raise BenchUsageError(f"{what} '{path}': no such user's home folder "
                              f"('{str(path).split('/')[0]}')") from None


def _checked(check: Callable[..., Any]) -> Callable[..., Any]:
    """The OS refusing to even look (a name too long, a loop of links) is one line too."""
    @functools.wraps(check)
    def guarded(path: str | os.PathLike[str], what: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return check(path, what, *args, **kwargs)
        except OSError as exc:
            raise BenchUsageError(f"{what} '{path}': {exc.strerror or exc}") from None

    return guarded


def _folder_for(target: Path, what: str, create: bool) -> Path:
    """The existing, writable folder ``target`` goes into (made if ``create``)."""
    parent = target.parent
    if not parent.exists():
        if not create:
            raise BenchUsageError(f"{what} '{target}': folder '{parent}' does not exist "
                                  "(create it first)")
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BenchUsageError(f"{what} '{target}': cannot create folder '{parent}': "
                                  f"{exc.strerror or exc}") from None
        print(f"created folder {parent} for {what}", file=sys.stderr)
    elif not parent.is_dir():
        raise BenchUsageError(f"{what} '{target}': '{parent}' is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BenchUsageError(f"{what} '{target}': folder '{parent}' is not writable")
    return parent


@_checked
def output_file(path: str | os.PathLike[str], what: str, create_parents: bool = False) -> Path:
    """A file bench will write: not a folder, in a writable folder that exists.

    ``create_parents`` makes missing folders (only for locations the user did not
    choose, such as the default results store) and says so.
    """
    target = _path(path, what)
    if target.is_dir():
        raise BenchUsageError(f"{what} '{target}' is a directory; give a file name")
    if target.exists():
        if not os.access(target, os.W_OK):
            raise BenchUsageError(f"{what} '{target}' is not writable (permission denied)")
        return target
    _folder_for(target, what, create_parents)
    return target


@_checked
def output_dir(path: str | os.PathLike[str], what: str, create: bool = False) -> Path:
    """A folder bench will write files into: an existing writable folder, or a new one
    whose parent exists (made, and said so, when ``create``; only checked otherwise)."""
    target = _path(path, what)
    if target.exists():
        if not target.is_dir():
            raise BenchUsageError(f"{what} '{target}' is a file, not a folder")
        if not os.access(target, os.W_OK | os.X_OK):
            raise BenchUsageError(f"{what} '{target}' is not writable (permission denied)")
        return target
    _folder_for(target, what, create=False)
    if create:
        try:
            target.mkdir()
        except OSError as exc:
            raise BenchUsageError(f"{what}: cannot create folder '{target}': "
                                  f"{exc.strerror or exc}") from None
        print(f"created folder {target} for {what}", file=sys.stderr)
    return target


@_checked
def input_file(path: str | os.PathLike[str], what: str) -> Path:
    """A file bench will read: it exists, is a file, and can be read."""
    target = _path(path, what)
    if target.is_dir():
        raise BenchUsageError(f"{what} '{target}' is a directory, not a file")
    if not target.exists():
        parent = target.parent
        if not parent.exists():
            raise BenchUsageError(f"{what} '{target}' does not exist (no folder '{parent}')")
        raise BenchUsageError(f"{what} '{target}' does not exist")
    if not os.access(target, os.R_OK):
        raise BenchUsageError(f"{what} '{target}' is not readable (permission denied)")
    return target


@_checked
def executable(program: str, what: str) -> str:
    """A program to start: a path to an executable file, or a name found on PATH."""
    target = _path(program, what)
    if os.sep not in program and not target.exists():
        found = shutil.which(program)
        if found is None:
            raise BenchUsageError(f"{what} '{program}' is not on PATH; give its full path")
        return found
    if target.is_dir():
        raise BenchUsageError(f"{what} '{target}' is a directory, not a program")
    if not target.exists():
        raise BenchUsageError(f"{what} '{target}' does not exist")
    if not os.access(target, os.X_OK):
        raise BenchUsageError(f"{what} '{target}' is not executable (chmod +x, or give another)")
    return str(target)
