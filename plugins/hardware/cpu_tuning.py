"""Everything the cpu backend changes in the measured process, in one place.

Three changes, each stored in the run's summary and each under the user's control:

- intra-op threads (``threads``; set for the run, restored after it);
- the steady heap (``steady_heap``; glibc told to keep freed memory, see
  :func:`keep_freed_memory`; ``steady_heap=false`` leaves, or puts back, glibc's
  defaults);
- with ``compile=true``, inductor's compile workers (``inductor_compile_threads``:
  1 for the run, restored after it).
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc mallopt() parameters
# glibc's own values of those two (malloc/malloc.c: DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX).
_GLIBC_TRIM_THRESHOLD, _GLIBC_MMAP_MAX = 128 * 1024, 65536
_steady_heap_on = False  # whether this process's glibc was told to keep freed memory


def usable_cores() -> int:
    """Cores this process may run on (respects taskset/cgroup affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _glibc() -> Any:
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # only glibc has it
    except (OSError, AttributeError):
        return None
    return libc


def keep_freed_memory() -> bool:
    """Stop glibc from handing freed activations back to the OS between passes.

    By default glibc serves large blocks with mmap and trims the heap top when
    they are freed, so every forward pass faults its activation memory back in
    (measured here: ~1,600 page faults per SqueezeNet 1.1 pass at batch 1, ~15%
    of its time; ~12,000 per 1.0-SqNxt-23 pass at batch 8). Serving everything
    from the heap and never trimming it removes that cost, as jemalloc or
    tcmalloc would. Process-wide and kept (a later run in the same process sees
    the same allocator); :func:`release_freed_memory` gives memory back between
    runs. False where the C library is not glibc.
    """
    global _steady_heap_on
    libc = _glibc()
    if libc is None:
        return False
    _steady_heap_on = bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
                           and libc.mallopt(_M_MMAP_MAX, 0))
    return _steady_heap_on


def default_heap() -> None:
    """Put glibc's trim and mmap settings back to its defaults if this process changed them."""
    global _steady_heap_on
    libc = _glibc()
    if libc is not None and _steady_heap_on:
        libc.mallopt(_M_TRIM_THRESHOLD, _GLIBC_TRIM_THRESHOLD)
        libc.mallopt(_M_MMAP_MAX, _GLIBC_MMAP_MAX)
        _steady_heap_on = False


def release_freed_memory() -> None:
    """Return free heap memory to the OS (so a run's peak RSS is not a previous run's)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


@contextmanager
def tuned(threads: int, *, steady_heap: bool, compile: bool) -> Iterator[dict[str, Any]]:
    """Apply the run's process changes; yields what was changed, for the summary.

    Threads and the inductor setting are restored on exit; the steady heap is
    kept (see :func:`keep_freed_memory`).
    """
    import torch

    changes: dict[str, Any] = {}
    if steady_heap:
        release_freed_memory()
        changes["steady_heap"] = keep_freed_memory()
    else:
        default_heap()
        changes["steady_heap"] = False
    threads_before = torch.get_num_threads()
    torch.set_num_threads(threads)
    compile_threads_before = None
    if compile:
        import torch._inductor.config as inductor_config

        # Compile in this process: a pool of compile workers keeps running after the first
        # pass and, on a small machine, slows the timed passes many times over.
        compile_threads_before = inductor_config.compile_threads
        inductor_config.compile_threads = 1
        changes["inductor_compile_threads"] = 1
    try:
        yield changes
    finally:
        torch.set_num_threads(threads_before)
        if compile_threads_before is not None:
            inductor_config.compile_threads = compile_threads_before
