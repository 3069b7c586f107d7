"""Large freed blocks go back to the system at once (glibc), so a gateway's memory follows its load.

glibc serves a block of 128 KiB or more from its own mapping and unmaps it when freed, until the
first such block is freed: from then on it raises that threshold to the freed block's size, and
blocks of up to that size come from the heap, where the ones freed between long-lived small blocks
stay resident. An import's 1 MiB batch bodies then grew the gateway's resident memory by several
batches' worth after a warm-up (`make bench`, import_tasks). Fixing the threshold keeps every
large block mapped and returned when freed; a 1 MiB block costs one mmap and one munmap.

Each thread that allocates (gRPC's core threads, the default executor's) also gets an arena of its
own, each holding freed memory back the same way. One arena serves one event loop and a few helper
threads (measured, growth after a warm-up import of 1,000,000 tasks: 4.2-4.9 MiB with the threshold
alone, 3.0 MiB with two arenas, 1.5-1.8 MiB with one; the REST front's and CreateTasks' CPU per
request the same with and without, within the runs' noise).
"""

from __future__ import annotations

import ctypes
import sys

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
M_ARENA_MAX = -8
LARGE_BLOCK = 128 * 1024
ARENAS = 1


def return_large_blocks_to_the_system() -> bool:
    """Fix glibc's mmap threshold at 128 KiB and its arenas at one; False where the C library is not
    glibc (nothing done). Call it before threads start: gRPC's threads would each get an arena."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # musl (Alpine) and others: their malloc has no such threshold to fix
        return False
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, LARGE_BLOCK)) and bool(mallopt(M_ARENA_MAX, ARENAS))
