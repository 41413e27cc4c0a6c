"""Huge pages for a FAISS index (fastreid_val/deploy/huge_pages.py): the rows a build or a load puts in
them are the same rows, the graph the same graph, and the pages the module reports moved are huge."""
import re
import sys

import numpy as np
import pytest

faiss = pytest.importorskip("faiss")

from fastreid_val.deploy import huge_pages  # noqa: E402
from fastreid_val.deploy.faiss_kinds import build  # noqa: E402


def vectors(n=3000, dim=512, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def huge_kb(address, nbytes):
    """AnonHugePages of the mappings that overlap ``[address, address + nbytes)``, from /proc/self/smaps."""
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            m = re.match(r"([0-9a-f]+)-([0-9a-f]+) ", line)
            if m:
                low, high = int(m.group(1), 16), int(m.group(2), 16)
                inside = low < address + nbytes and high > address
            elif inside and line.startswith("AnonHugePages:"):
                total += int(line.split()[1])
    return total


def plain(factory, x):
    index = faiss.index_factory(x.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    if "HNSW" in factory:
        faiss.downcast_index(index).hnsw.efConstruction = 40
    index.add(x)
    return index


@pytest.mark.parametrize("factory", ["HNSW32,Flat", "Flat"])
def test_a_build_in_huge_pages_is_the_same_index(factory):
    x, q = vectors(), vectors(50, seed=1)
    ours, theirs = build(factory, x), plain(factory, x)
    assert ours.ntotal == theirs.ntotal == len(x)
    stored = faiss.rev_swig_ptr(huge_pages._flat_codes_owner(faiss.downcast_index(ours)).get_xb(), x.size)
    np.testing.assert_array_equal(stored.reshape(x.shape), x)
    if factory.startswith("HNSW"):
        graphs = [faiss.downcast_index(i).hnsw.neighbors for i in (ours, theirs)]
        a, b = (faiss.rev_swig_ptr(g.data(), g.size()).copy() for g in graphs)
        np.testing.assert_array_equal(a, b)
    (d1, i1), (d2, i2) = ours.search(q, 10), theirs.search(q, 10)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(d1, d2)


def whole_pages(span):
    """Bytes of the whole 2 MB pages inside ``span`` (address, bytes): what can be in huge pages."""
    address, nbytes = span
    return max(0, (address + nbytes) // huge_pages.HUGE - -(-address // huge_pages.HUGE)) * huge_pages.HUGE


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/smaps is Linux's")
def test_what_is_reported_moved_is_in_huge_pages():
    # 48 MB: above glibc's largest mmap threshold (32 MB), so the codes get pages of their own, as a
    # gallery's do, rather than a share of the heap's.
    x = vectors(12_000, 1024)
    index = build("Flat", x)
    built = huge_pages._vector_span(huge_pages._flat_codes_owner(faiss.downcast_index(index)).codes)
    in_huge_after_build = huge_kb(*built) * 1024
    loaded = faiss.deserialize_index(faiss.serialize_index(index))  # as a search process reads it
    span = huge_pages._vector_span(huge_pages._flat_codes_owner(faiss.downcast_index(loaded)).codes)
    assert whole_pages(span) > 0
    moved = huge_pages.collapse_index(loaded)
    assert moved % huge_pages.HUGE == 0
    probe = np.ones(3 * huge_pages.HUGE, np.uint8)  # does this system give huge pages at all?
    assert bool(moved) == bool(huge_pages.advise(probe.ctypes.data, probe.nbytes))
    if moved:  # the system gives huge pages: the loaded rows are in them now, and the build's were
        assert moved >= whole_pages(span)
        assert huge_kb(*span) * 1024 >= whole_pages(span)
        assert in_huge_after_build >= whole_pages(built)
    np.testing.assert_array_equal(loaded.search(x[:20], 5)[1], index.search(x[:20], 5)[1])


def test_indexes_without_flat_codes_and_empty_spans_are_left_alone():
    x = vectors(2000, 64)
    ivf = faiss.index_factory(64, "IVF8,Flat", faiss.METRIC_INNER_PRODUCT)
    ivf.train(x)
    assert huge_pages.presize_codes(ivf, len(x)) == 0
    ivf.add(x)
    assert huge_pages.collapse_index(ivf) == 0  # a list per cell: nothing walked as one array
    assert huge_pages.advise(4096, 100) == 0  # no whole 2 MB page inside
    filled = faiss.IndexFlatIP(64)
    filled.add(x[:10])
    assert huge_pages.presize_codes(filled, 10) == 0  # only an empty index is presized
    assert filled.ntotal == 10
