"""The zero pages of an allocation go back to the kernel, its contents unchanged."""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Iterator

import pytest

from knm.plugins.ssh.memory import PAGE, release_zero_pages

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")

LIBC = ctypes.CDLL(None)
LIBC.malloc.restype, LIBC.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
LIBC.free.restype, LIBC.free.argtypes = None, [ctypes.c_void_p]
LIBC.mincore.restype = ctypes.c_int
LIBC.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]

SIZE = 20 * PAGE


@pytest.fixture
def allocation() -> Iterator[int]:
    """An 80 KB ``malloc`` allocation cleared with ``memset`` (as libssh2 clears a session):
    every page of it resident."""
    address = LIBC.malloc(SIZE)
    assert address
    ctypes.memset(address, 0, SIZE)
    yield address
    LIBC.free(address)


def whole_pages(address: int) -> list[int]:
    first = -(-address // PAGE) * PAGE
    return list(range(first, (address + SIZE) // PAGE * PAGE, PAGE))


def resident(page: int) -> bool:
    vector = ctypes.create_string_buffer(1)
    assert LIBC.mincore(page, PAGE, vector) == 0
    return bool(vector.raw[0] & 1)


def test_the_zero_pages_of_an_allocation_leave_memory_and_read_as_zeros(allocation: int) -> None:
    pages = whole_pages(allocation)
    assert all(resident(page) for page in pages)

    released = release_zero_pages(allocation)

    assert released == len(pages) * PAGE
    assert not any(resident(page) for page in pages)
    assert ctypes.string_at(allocation, SIZE) == bytes(SIZE)


def test_a_page_holding_data_stays_with_its_data(allocation: int) -> None:
    pages = whole_pages(allocation)
    kept = {pages[0], pages[5], pages[-1]}
    for page in kept:
        ctypes.memset(page + 100, 0xAB, 1)
    # Data outside the whole pages (the allocation's partial first and last pages) is kept too.
    ctypes.memset(allocation, 0xCD, 1)
    before = ctypes.string_at(allocation, SIZE)

    released = release_zero_pages(allocation)

    assert released == (len(pages) - len(kept)) * PAGE
    assert {page for page in pages if resident(page)} == kept
    assert ctypes.string_at(allocation, SIZE) == before


def test_a_page_given_back_takes_new_writes(allocation: int) -> None:
    release_zero_pages(allocation)
    page = whole_pages(allocation)[3]

    ctypes.memset(page, 0x5A, PAGE)

    assert resident(page)
    assert ctypes.string_at(page, PAGE) == b"\x5a" * PAGE


def test_no_address_and_small_allocations_are_left_alone() -> None:
    assert release_zero_pages(None) == 0
    assert release_zero_pages(0) == 0
    small = LIBC.malloc(64)
    try:
        ctypes.memset(small, 0, 64)
        assert release_zero_pages(small) == 0
    finally:
        LIBC.free(small)


def test_a_fresh_libssh2_session_gives_back_most_of_itself() -> None:
    pytest.importorskip("ssh2")
    from ssh2.session import Session

    from knm.plugins.ssh.libssh2 import _native, _pointer

    if _native() is None:
        pytest.skip("this ssh2-python's layout is not the known one")
    session = Session()

    # libssh2 1.11's session struct is ~80 KB, all but its first fields zero when new.
    assert release_zero_pages(_pointer(session)) >= 48 * 1024
    session.set_blocking(False)  # the session still answers
