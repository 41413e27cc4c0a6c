"""The kinds of FAISS index, named by ``index_factory`` strings over the inner product of unit vectors
(cosine): ``Flat`` (exact), ``HNSW32,Flat`` (a graph: the approximate default from ``EXACT_BELOW``
images on), ``IVF<nlist>,Flat`` (inverted lists, ``--kind ivf``), or any factory string
(``--kind "HNSW16,Flat"``); and how a query is searched, by how many rows its filter lets through:

* the exact index: exact search over the rows that pass (the flat vectors with the filter as an
  ``IDSelectorBitmap``), whatever the filter;
* an approximate index and a filter passing fewer than ``APPROX_MIN_SHARE`` of the rows or at most
  ``EXACT_BELOW`` rows: a scan of the rows that pass, as 8-bit codes (``SCAN``, a quarter of the float
  vectors' bytes), whose best ``RERANK`` · k are ranked again by their float vectors (an HNSW graph
  searched with a narrow selector loses recall, since most of its paths lead through rows that do not
  pass). Where at most ``RERANK`` · k rows pass, this is exact;
* otherwise the graph (``efSearch`` raised by ``FILTERED_EF`` / share) or the cells (``nprobe`` by 1 / share),
  with the selector; a query for which it finds fewer than k rows is then scanned as above.
"""
import math

from ..errors import IndexMismatchError
from .huge_pages import presize_codes

__all__ = ["factory_for", "default_nlist", "default_nprobe", "new_index", "build", "approximate_params",
           "new_scan", "EXACT_BELOW", "HNSW", "EF_SEARCH", "EF_CONSTRUCTION", "APPROX_MIN_SHARE", "SCAN", "RERANK"]

EXACT_BELOW = 10_000     # auto: exact below this many images (a brute-force query over 10,000 x 1280 takes ~6 ms)
HNSW = "HNSW32,Flat"     # M = 32 links per node
# HNSW candidates per query (at least k): the smallest of 64, 72, 80, 88, 96 whose recall@10 on
# benchmarks/search.py's 100,000 x 1280-d gallery is at least 0.96 (the 0.95 target and a point to spare),
# a rule written before this run (but after a throwaway sweep of the same gallery had shown the
# recalls): 0.956 at 72, 0.964 at 80, 0.972 at 96 (`--kinds exact,hnsw --blocks
# --small-pages --ef-search 72,80,96`, docs/DEPLOY.md).
# Earlier runs: 0.868 at 32, 0.946 at 64, 0.972 at 96, 0.981 at 192. A larger gallery needs more: at
# 1,000,000 rows the graph finds a fifth of the top-10 at 80 (docs/DEPLOY.md), so raise it there.
EF_SEARCH = 80
# Candidates per insertion while the graph is built (FAISS's default, 40). The build's cost grows with it,
# and the graph's quality too, steeply on the benchmark's gallery: with `--ef-construction 20` it ingested
# 2,036 vectors/s (2,090 at 40 on a quieter machine, with the later graph-alone FAISS file), but its
# graph found recall@10 0.654 at efSearch 96 against 0.972 (docs/DEPLOY.md).
EF_CONSTRUCTION = 40
# Under a filter, efSearch is raised by FILTERED_EF / share: the filtered top-10 reaches past the query's
# identity, where a graph finds neighbours less surely. Excluding one camera of 20 at 100,000 x 1280-d:
# recall@10 0.943 at efSearch 102, 0.950 at 150, 0.958 at 200, 0.968 at 300; 2.0 gives 169 (80 · 2 / 0.95).
FILTERED_EF = 2.0
APPROX_MIN_SHARE = 0.5   # a filter passing a smaller share of the rows: those rows are scanned
# The scan of a narrow filter's rows. A 10% time window of benchmarks/search.py's 100,000 x 1280-d gallery,
# one thread, 200 queries (load average 1.6): float vectors with the selector 8.42 ms; 8-bit codes with
# the best 40 ranked again 5.00 ms, the best 20 4.80 ms, recall@10 1.000 both; 4-bit codes 5.29 ms (0.999).
SCAN = "SQ8"
SCAN_MARGIN = 0.1
RERANK = 4
MIN_POINTS_PER_CELL = 39  # FAISS's k-means warns below 39 training points per centroid


def default_nlist(n):
    """Cells of an IVF index of ``n`` vectors: 4·sqrt(n) (FAISS's guideline is 4 to 16·sqrt(n)), with
    at least 39 vectors per cell to train k-means: 1,264 cells for 100,000 vectors."""
    return max(1, min(int(4 * math.sqrt(n)), n // MIN_POINTS_PER_CELL))


def default_nprobe(nlist):
    """Cells visited per query: 1/8 of the cells (at least 8)."""
    return min(nlist, max(8, nlist // 8))


def factory_for(kind, n, current=None, nlist=None):
    """The factory string an indexing run of ``n`` images builds for ``--kind`` (auto, exact, hnsw, ivf,
    or a factory string). An IVF index keeps its cells unless ``nlist`` is given."""
    if kind == "auto":
        return "Flat" if n < EXACT_BELOW else HNSW
    if kind == "exact":
        return "Flat"
    if kind == "hnsw":
        return HNSW
    if kind == "ivf":
        if nlist is None and current and current.startswith("IVF"):
            return current
        return f"IVF{nlist or default_nlist(n)},Flat"
    return kind


def new_index(factory, dim):
    import faiss

    try:
        return faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        raise IndexMismatchError(f"--kind {factory!r} is not a FAISS index_factory string this FAISS builds "
                                 f"({str(e).strip().splitlines()[-1]}): use auto, exact, hnsw, ivf or e.g. "
                                 "HNSW32,Flat") from None


def build(factory, vectors):
    """An index of ``factory`` over ``vectors`` [n, d] (trained on them where it needs training; a graph
    built with ``EF_CONSTRUCTION``; flat rows in huge pages where the system gives them)."""
    import faiss

    index = new_index(factory, vectors.shape[1])
    if isinstance(faiss.downcast_index(index), faiss.IndexHNSW):
        faiss.downcast_index(index).hnsw.efConstruction = EF_CONSTRUCTION
    if not index.is_trained:
        index.train(vectors)
    presize_codes(index, len(vectors))  # the rows go straight into huge pages where the system has them
    index.add(vectors)
    return index


def new_scan(vectors):
    """The 8-bit codes (``SCAN``) of ``vectors`` [n, d] that a narrow filter's rows are scanned in; more
    rows are added as they come; None without rows to learn the codes' ranges from."""
    import faiss

    if not len(vectors):
        return None

    scan = faiss.index_factory(vectors.shape[1], SCAN, faiss.METRIC_INNER_PRODUCT)  # an IndexScalarQuantizer
    # Each dimension's range: its min..max over up to ~100,000 rows, widened by SCAN_MARGIN of it on either
    # side for rows that come later; a value outside is clipped (the codes only choose candidates).
    scan.sq.rangestat_arg = SCAN_MARGIN
    scan.train(vectors[:: max(1, len(vectors) // 100_000)])
    scan.add(vectors)
    return scan


def approximate_params(index, share, k, sel, ef_search, nprobe):
    """Search parameters of the approximate ``index`` for a filter passing ``share`` of its rows, or None
    where the rows that pass are better searched exactly."""
    import faiss

    if share < APPROX_MIN_SHARE:
        return None
    if isinstance(index, faiss.IndexHNSW):
        factor = 1.0 if sel is None else FILTERED_EF / share
        return faiss.SearchParametersHNSW(efSearch=int(math.ceil(max(ef_search, k) * factor)), sel=sel)
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        return faiss.SearchParametersIVF(nprobe=min(ivf.nlist, int(math.ceil(nprobe / share))), sel=sel)
    return faiss.SearchParameters(sel=sel)
