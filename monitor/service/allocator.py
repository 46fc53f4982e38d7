"""glibc malloc settings for a process that polls: two arenas, and a fixed mmap threshold.

Polls allocate and free bodies, parse trees and article texts by the megabyte, from several
threads (the event loop, the parse threads, the store's writer). glibc gives each thread an arena
of its own (up to 8 per core) and keeps what is freed in it for reuse by that arena only; and
after a large block is freed, it raises its mmap threshold to that size (up to 32 MB), so later
bodies of a few MB come from the arenas instead of being mapped and unmapped. Both keep freed
memory resident: after a `once` over the hostile and parser corpora, 50-100 MB of the arenas was
free but not returned. Two arenas and the default 128 KiB threshold, fixed, cut the corpus
`once`'s peak by 20-40 MB (bench/bench_memory.py, two runs: 151-170 -> 129-131 MB with the
shipped defaults, 301-311 -> 270-280 MB with a 60 MB feed accepted), at no measurable CPU cost.

Only glibc has these knobs; elsewhere (musl, macOS) `tune_malloc` does nothing. The values are
set when a `Monitor` is made; a MALLOC_ARENA_MAX or MALLOC_MMAP_THRESHOLD_ the user set in the
environment is left as the user wants it.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["ARENAS", "MMAP_THRESHOLD", "tune_malloc"]

_M_MMAP_THRESHOLD = -3  # mallopt parameters, from glibc's malloc.h
_M_ARENA_MAX = -8
ARENAS = 2
MMAP_THRESHOLD = 128 * 1024  # glibc's default, but fixed: no dynamic raise after a big free


def tune_malloc() -> bool:
    """Apply the settings above to this process; True when glibc took them."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # no C library symbols to speak of
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # musl has a mallopt that does nothing and returns 0
    wanted = ((_M_ARENA_MAX, ARENAS, "MALLOC_ARENA_MAX"),
              (_M_MMAP_THRESHOLD, MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_"))  # fmt: skip
    return all(bool(mallopt(param, value)) for param, value, env in wanted if env not in os.environ)
