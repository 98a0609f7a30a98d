"""Let glibc's malloc reuse large freed blocks instead of handing them back to the kernel.

glibc serves every allocation above its mmap threshold (adaptive, at most 32 MiB) with a fresh ``mmap`` and
unmaps it on free, so each new tensor that large page-faults on every 4 KiB page it touches. PyTorch has no
caching allocator for CPU tensors, and the attention models allocate several (batch, heads, T, T) tensors
per layer and step -- AKT's are 40 MiB at batch 32, 8 heads and 200 steps. An AKT training step on one CPU
thread (forward + backward + Adam, 32 windows of 200 steps) took 4.6-6.0 s with glibc's defaults and 3.7-4.0 s
with the thresholds below, DKT's 0.135-0.154 s and 0.105 s (``scripts/benchmarks/kt_models_step.py`` with and
without ``--malloc system``; docs/benchmarks.md).

PyTorch's performance tuning guide recommends swapping the allocator (jemalloc or TCMalloc through
``LD_PRELOAD``) for the same reason; raising the two thresholds with ``mallopt`` gets the reuse without a
restart or an extra library. The cost is memory the process keeps after freeing it (at most the trim
threshold above what it uses). Nothing is changed when the user tuned malloc already (``MALLOC_*_`` or
``GLIBC_TUNABLES`` set), when ``KT_SYSTEM_MALLOC=1``, or off glibc.
"""

from __future__ import annotations

import ctypes
import os
import sys

# mallopt parameters, from glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
THRESHOLD = 1 << 30  # allocations below 1 GiB come from the heap; up to 1 GiB of free heap is kept
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def reuse_freed_memory(threshold: int = THRESHOLD) -> bool:
    """Raise glibc's mmap and trim thresholds to ``threshold`` bytes; True if both were set."""
    if not sys.platform.startswith("linux") or os.environ.get("KT_SYSTEM_MALLOC") == "1":
        return False
    if any(name in os.environ for name in USER_SETTINGS):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl has no libc.so.6)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, threshold)) and bool(mallopt(M_TRIM_THRESHOLD, threshold))
