"""A query of the FAISS engine under a filter (:class:`~.faiss_backend.FaissBackend` holds the state):
the rows that pass, as a mask over the rows; the approximate index searched with a selector of those
rows where :func:`.faiss_kinds.approximate_params` says it serves; otherwise the passing rows scanned,
exactly (the exact kind) or as 8-bit codes whose best ``RERANK`` · k are ranked again by their float
vectors (the approximate kinds)."""
import numpy as np

from . import faiss_kinds

__all__ = ["filter_mask", "filtered_search", "rerank"]


def filter_mask(deleted, cam, time, codes, flt):
    """Rows that pass ``flt`` and are not ``deleted``: bool [n]. ``cam``: each row's camera code (``codes``
    maps a camera name to its code); ``time``: each row's timestamp (NaN: none)."""
    keep = ~deleted
    if flt.exclude_camera is not None and flt.exclude_camera in codes:
        keep &= cam != codes[flt.exclude_camera]
    if flt.cameras is not None:
        keep &= np.isin(cam, [codes[c] for c in flt.cameras if c in codes])
    if flt.since is not None:
        keep &= time >= flt.since  # NaN (no time) compares False
    if flt.until is not None:
        keep &= time <= flt.until
    return keep


def filtered_search(index, flat, scan, vectors, keep, queries, k, ef_search, nprobe):
    """Cosine distances [q, k] and rows [q, k] (-1 where fewer than k pass) of the best k rows of ``keep``
    for each query. ``index``: the kind's FAISS index; ``flat``: the exact index of the same rows (the
    same object for the exact kind); ``scan``: the 8-bit codes of the rows, or None; ``vectors``: a
    callable giving the rows' float vectors [n, d] (for re-ranking)."""
    import faiss

    queries = np.ascontiguousarray(queries, dtype=np.float32)
    n, selected = len(keep), int(keep.sum())
    sims = np.full((len(queries), k), -np.inf, np.float32)
    rows = np.full((len(queries), k), -1, np.int64)
    if selected == 0 or len(queries) == 0:
        return np.clip(1.0 - sims, 0.0, 2.0), rows
    bitmap = None if selected == n else np.packbits(keep, bitorder="little")
    sel = None if bitmap is None else faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
    # Module attributes read at each call: the tests lower EXACT_BELOW to exercise the graph on a few rows.
    params = None if index is flat or selected <= faiss_kinds.EXACT_BELOW else \
        faiss_kinds.approximate_params(index, selected / n, k, sel, ef_search, nprobe)
    if params is not None:
        sims[:], rows[:] = index.search(queries, k, params=params)
        short = np.flatnonzero((rows[:, :min(k, selected)] < 0).any(axis=1))
    else:
        short = np.arange(len(queries))
    if len(short):  # the rows that pass: exact, or as codes re-ranked by their float vectors
        params = faiss.SearchParameters(sel=sel) if sel is not None else None
        if scan is None:
            sims[short], rows[short] = flat.search(queries[short], k, params=params)
        else:
            _, candidates = scan.search(queries[short], k * faiss_kinds.RERANK, params=params)
            sims[short], rows[short] = rerank(vectors(), queries[short], candidates, k)
    return np.clip(1.0 - sims, 0.0, 2.0), rows


def rerank(vectors, queries, candidates, k):
    """The best k of each query's ``candidates`` (-1: none) by the inner product of their ``vectors``."""
    sims = np.full((len(queries), k), -np.inf, np.float32)
    rows = np.full((len(queries), k), -1, np.int64)
    for i, (q, c) in enumerate(zip(queries, candidates)):
        c = c[c >= 0]
        s = vectors[c] @ q
        best = np.argsort(-s, kind="stable")[:k]
        sims[i, :len(best)], rows[i, :len(best)] = s[best], c[best]
    return sims, rows
