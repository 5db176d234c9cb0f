"""Giving the kernel back the pages of an allocation that hold only zeros.

libssh2 allocates each session as one ~80 KB struct (its packet buffers are inline: 16 KB in,
35 KB out) and clears all of it with ``memset``, which makes every page of it resident. A
session that has logged in and sits idle in the pool uses a few of those pages: the rest stay
zero, ~60 KB of resident memory per pooled node (300 MB with 5,000 pooled).

``release_zero_pages`` hands such pages back with ``madvise(MADV_DONTNEED)``: on private
anonymous memory (the heap) a page given back reads as zeros again, faulted in when first
touched, so the allocation's contents are unchanged and its owner notices nothing. Only whole
pages inside the allocation, and only those that are all zeros, are given back; the caller
must be the allocation's only user at that moment (a write between the check and the
``madvise`` would be lost). Linux only; elsewhere, or without ``malloc_usable_size``, nothing
is done.
"""

from __future__ import annotations

import ctypes
import functools
import mmap
import sys
from typing import Any

PAGE = mmap.PAGESIZE
#: A page of zeros the pages are compared with (``memcmp``: no copy of each page made).
_ZERO = ctypes.create_string_buffer(PAGE)
_MADV_DONTNEED = 4
#: Allocations outside this range are not what the callers hand in: left alone.
_SMALLEST, _LARGEST = 2 * PAGE, 16 * 1024 * 1024


@functools.cache
def _libc() -> Any:
    """The C library with the three calls typed, or None where they are not to be had."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        usable, madvise, compare = libc.malloc_usable_size, libc.madvise, libc.memcmp
    except (OSError, AttributeError):
        return None
    compare.restype = ctypes.c_int
    compare.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    usable.restype, usable.argtypes = ctypes.c_size_t, [ctypes.c_void_p]
    madvise.restype = ctypes.c_int
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return libc


def release_zero_pages(address: int | None) -> int:
    """Gives back the all-zero whole pages of the ``malloc`` allocation at ``address``; returns
    how many bytes were given back (0 when nothing could be)."""
    libc = _libc()
    if libc is None or not address:
        return 0
    size = libc.malloc_usable_size(address)
    if not _SMALLEST <= size <= _LARGEST:
        return 0
    first = -(-address // PAGE) * PAGE
    end = (address + size) // PAGE * PAGE
    released = 0
    run_start = run_end = first
    # Neighbouring zero pages go back in one call.
    for page in range(first, end, PAGE):
        if libc.memcmp(page, _ZERO, PAGE) == 0:
            if page != run_end:
                released += _give_back(libc, run_start, run_end)
                run_start = page
            run_end = page + PAGE
    released += _give_back(libc, run_start, run_end)
    return released


def _give_back(libc: Any, start: int, end: int) -> int:
    if end <= start or libc.madvise(start, end - start, _MADV_DONTNEED) != 0:
        return 0
    return end - start
