"""Transparent huge pages for the arrays a FAISS search walks at random (Linux only).

A graph search reads a few thousand vectors of 5 KB (1280-d floats) at random places of a 500 MB array
(100,000 rows); on 4 KB pages many of those reads miss the TLB. The kernel serves an array from 2 MB pages
where asked (``madvise``): ``MADV_HUGEPAGE`` for the pages it has yet to fault in, ``MADV_COLLAPSE``
(Linux 6.1 and later) to move those already there. Measured with ``benchmarks/search.py`` (one search
thread, 100,000 x 1280-d, ``HNSW32,Flat``): docs/DEPLOY.md. The graph and the results are the same
either way (``tests/test_huge_pages.py``).

NumPy asks for huge pages for its own large arrays already; FAISS's C++ vectors do not, so this module
asks for them. Where the system cannot give them (another OS, an older kernel, no free 2 MB pages)
nothing changes but the speed.
"""
import contextlib
import ctypes
import sys

__all__ = ["advise", "presize_codes", "collapse_index", "small_pages"]

HUGE = 2 << 20
MADV_HUGEPAGE = 14
MADV_COLLAPSE = 25

_madvise = None
_off = [False]


@contextlib.contextmanager
def small_pages():
    """Inside, nothing is asked for (the benchmark's control: the same index on the system's usual pages)."""
    _off[0] = True
    try:
        yield
    finally:
        _off[0] = False


def _libc_madvise():
    global _madvise
    if _madvise is None:
        if not sys.platform.startswith("linux"):
            _madvise = False
        else:
            try:
                f = ctypes.CDLL(None, use_errno=True).madvise
                f.argtypes, f.restype = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int], ctypes.c_int
                _madvise = f
            except (OSError, AttributeError):
                _madvise = False
    return _madvise


def advise(address, nbytes):
    """Ask for huge pages for the whole 2 MB pages inside ``[address, address + nbytes)``, and move the
    pages already faulted in there. The bytes the kernel took the request for (0: none)."""
    madvise = not _off[0] and _libc_madvise()
    start = (address + HUGE - 1) // HUGE * HUGE
    end = (address + nbytes) // HUGE * HUGE
    if not madvise or end <= start:
        return 0
    if madvise(start, end - start, MADV_HUGEPAGE) != 0:
        return 0
    if madvise(start, end - start, MADV_COLLAPSE) != 0:
        return 0  # an older kernel, or no free huge pages: the pages stay as they are
    return end - start


def _vector_span(vector):
    """(address, bytes) of a FAISS ``MaybeOwnedVector`` / ``std::vector`` wrapper's data."""
    import faiss

    n = vector.size()
    if not n:
        return 0, 0
    return faiss.rev_swig_ptr(vector.data(), n).ctypes.data, vector.byte_size()


def presize_codes(index, n):
    """Before ``index.add`` of ``n`` rows into an empty index that keeps its vectors as flat codes (an
    exact ``IndexFlat`` or an HNSW graph's flat storage): allocate the codes array at its final size, in
    huge pages, and empty it again, keeping its capacity, so that ``add`` writes into those pages. The
    bytes in huge pages (0: none; the add then allocates as usual)."""
    import faiss

    flat = _flat_codes_owner(faiss.downcast_index(index))
    if flat is None or flat.ntotal != 0 or not flat.codes.is_owned:
        return 0
    flat.codes.resize(n * flat.code_size)
    done = advise(*_vector_span(flat.codes))
    flat.codes.resize(0)  # a std::vector keeps its capacity when it shrinks
    return done


def collapse_index(index):
    """Move what a search of ``index`` walks into huge pages: its flat codes (an exact index's vectors,
    an HNSW graph's storage, a scalar quantizer's codes) and an HNSW graph's neighbour lists. The bytes
    moved."""
    import faiss

    down = faiss.downcast_index(index)
    done = 0
    owner = _flat_codes_owner(down)
    if owner is not None and owner.codes.is_owned:
        done += advise(*_vector_span(owner.codes))
    if isinstance(down, faiss.IndexHNSW):
        done += advise(*_vector_span(down.hnsw.neighbors))
    return done


def _flat_codes_owner(down):
    """The index whose ``codes`` hold the rows (``IndexFlat``, ``IndexScalarQuantizer``, an HNSW graph's
    storage), or None (IVF keeps a list per cell)."""
    import faiss

    if isinstance(down, faiss.IndexFlatCodes):
        return down
    storage = getattr(down, "storage", None)
    if storage is not None and isinstance(down, faiss.IndexHNSW):
        storage = faiss.downcast_index(storage)
        if isinstance(storage, faiss.IndexFlatCodes):
            return storage
    return None
