"""The FAISS search engine without a model: filtered top-k against a naive NumPy reference (exact where the
index is exact, k results whenever k rows pass), tombstones and compaction, the writer lock, every kind of
tampering refused in one line, the earlier format refused, and image metadata from names, CSV and
VERI-Wild's vehicle_info.txt."""
import os
import shutil
import sqlite3

import numpy as np
import pytest

from fastreid_val.deploy import faiss_kinds
from fastreid_val.deploy.backend import open_backend
from fastreid_val.deploy.faiss_backend import FaissBackend
from fastreid_val.deploy.metadata import Filter, ImageMeta, gallery_metadata, name_metadata, parse_time
from fastreid_val.errors import IndexLockedError, IndexMismatchError, IndexNotFoundError, MetadataError

D, N, CAMERAS = 24, 2400, 20
MODEL = {"fingerprint": "synthetic", "dim": D, "model": "synthetic"}


def gallery(n=N, seed=0):
    """Unit vectors of n/4 identities (4 images each, noisy copies of a center), camera i % 20, time i."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n // 4, D))
    x = centers[np.arange(n) // 4] + 0.7 * rng.standard_normal((n, D))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    entries = [{"path": f"/gallery/{i:05d}.jpg", "size": 100 + i, "mtime_ns": i} for i in range(n)]
    metas = [ImageMeta(f"c{i % CAMERAS:03d}", float(i), str(i // 4)) for i in range(n)]
    return x, entries, metas


def write(folder, kind, n=N, batch=600, seed=0, **kw):
    x, entries, metas = gallery(n, seed)
    with FaissBackend.open(str(folder), writer=True, model=MODEL, kind=kind, **kw) as b:
        for s in range(0, n, batch):
            b.add(entries[s:s + batch], metas[s:s + batch], x[s:s + batch])
        b.finish()
    return x, metas


def naive(queries, x, metas, flt, deleted=(), k=10):
    """Float64 top-k over the rows passing ``flt``, written out row by row."""
    ok = np.array([i not in deleted
                   and (flt.exclude_camera is None or m.camera != flt.exclude_camera)
                   and (flt.cameras is None or m.camera in flt.cameras)
                   and (flt.since is None or m.timestamp >= flt.since)
                   and (flt.until is None or m.timestamp <= flt.until) for i, m in enumerate(metas)])
    sims = queries.astype(np.float64) @ x.astype(np.float64).T
    sims[:, ~ok] = -np.inf
    order = np.argsort(-sims, axis=1, kind="stable")[:, :min(k, int(ok.sum()))]
    return order, ok


FILTERS = {"none": Filter(), "camera": Filter(exclude_camera="c003"),
           "cameras": Filter(cameras=frozenset({"c001", "c005"})), "time": Filter(since=1000.0, until=1239.0),
           "all three": Filter(exclude_camera="c001", cameras=frozenset({"c001", "c002", "c007"}), until=1800.0),
           "one row": Filter(cameras=frozenset({"c004"}), since=4.0, until=4.0)}


@pytest.mark.parametrize("kind", ["exact", "hnsw", "ivf"])
def test_filtered_top_k_against_a_naive_reference(tmp_path, kind, monkeypatch):
    monkeypatch.setattr(faiss_kinds, "EXACT_BELOW", 200)  # let the graph and the cells serve at this size
    x, metas = write(tmp_path, kind)
    queries = x[::97] + 0.05
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    with open_backend(str(tmp_path), nprobe=24) as b:  # IVF: 24 of 61 cells (the default 8 finds 0.78 here)
        assert b.factory == {"exact": "Flat", "hnsw": "HNSW32,Flat", "ivf": "IVF61,Flat"}[kind]  # 2400 // 39 cells
        for name, flt in FILTERS.items():
            truth, ok = naive(queries, x, metas, flt)
            dist, rows = b.search(queries, 10, flt)
            found = rows[:, :truth.shape[1]]
            assert (found >= 0).all() and (rows[:, truth.shape[1]:] == -1).all(), name  # k whenever k pass
            assert ok[found].all(), name  # every result passes the filter
            if kind == "exact" or name in ("cameras", "time", "all three", "one row"):  # narrow: searched exactly
                np.testing.assert_array_equal(found, truth, err_msg=name)
                np.testing.assert_allclose(dist[:, :truth.shape[1]], 1 - np.take_along_axis(
                    queries.astype(np.float64) @ x.T.astype(np.float64), truth, 1), atol=1e-5)
            else:
                recall = np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)])
                assert recall >= 0.95, (name, recall)


def test_a_narrow_scan_reads_codes_of_the_rows_own_vectors(tmp_path, monkeypatch):
    """An approximate index scans a narrow filter's rows as 8-bit codes: they decode to the rows' vectors
    clipped to each dimension's range (within one 8-bit step of it) after the writer's exact index is
    rebuilt as a graph, after rows are added to the graph, and when the index is opened again; and a
    filter passing at most RERANK * k rows gets their exact top-k."""
    monkeypatch.setattr(faiss_kinds, "EXACT_BELOW", 200)
    x, entries, metas = gallery(N + 300)
    lo, hi = x[:N].min(0), x[:N].max(0)  # the ranges the codes learn from the first N rows, widened:
    lo, hi = lo - faiss_kinds.SCAN_MARGIN * (hi - lo), hi + faiss_kinds.SCAN_MARGIN * (hi - lo)
    step = ((hi - lo) / 255).max()
    with FaissBackend.open(str(tmp_path), writer=True, model=MODEL, kind="auto") as b:
        b.add(entries[:N], metas[:N], x[:N])
        b.finish()  # Flat (what the rows were committed into) -> HNSW32,Flat
        assert b.factory == "HNSW32,Flat" and b.scan.ntotal == N
        np.testing.assert_allclose(b.scan.reconstruct_n(0, N), x[:N], atol=step)
        b.add(entries[N:], metas[N:], x[N:])
        np.testing.assert_allclose(b.scan.reconstruct_n(0, N + 300), np.clip(x, lo, hi), atol=step)
        b.finish()
    with open_backend(str(tmp_path)) as b:  # opened again: the ranges are learnt from all the rows
        lo, hi = x.min(0), x.max(0)
        lo, hi = lo - faiss_kinds.SCAN_MARGIN * (hi - lo), hi + faiss_kinds.SCAN_MARGIN * (hi - lo)
        np.testing.assert_allclose(b.scan.reconstruct_n(0, N + 300), x, atol=((hi - lo) / 255).max())
        flt = Filter(since=100.0, until=100.0 + faiss_kinds.RERANK * 10 - 1)  # 40 rows pass
        truth, _ = naive(x[:50], x, metas, flt)
        np.testing.assert_array_equal(b.search(x[:50], 10, flt)[1], truth)


def test_deletions_are_skipped_then_compacted(tmp_path):
    x, metas = write(tmp_path, "exact")
    deleted = set(range(0, N, 10))  # 10%: tombstones
    with FaissBackend.open(str(tmp_path), writer=True, model=MODEL, kind="exact") as b:
        b.delete(sorted(deleted))
        b.finish()
    queries = x[5:400:40]
    with open_backend(str(tmp_path)) as b:
        assert b.n == N and len(b.live()) == N - len(deleted)
        truth, _ = naive(queries, x, metas, Filter(), deleted)
        np.testing.assert_array_equal(b.search(queries, 10, Filter())[1], truth)
    more = set(range(1, N, 5))  # now 30% deleted: past COMPACT_SHARE, rows dropped and renumbered
    with FaissBackend.open(str(tmp_path), writer=True, model=MODEL, kind="exact") as b:
        b.delete(sorted(more))
        b.finish()
    gone = deleted | more
    keep = [i for i in range(N) if i not in gone]
    with open_backend(str(tmp_path)) as b:
        assert b.n == len(keep) and not b.deleted.any()
        assert [b.row(p)["path"] for p in range(b.n)] == [f"/gallery/{i:05d}.jpg" for i in keep]
        truth, _ = naive(queries, x[keep], [metas[i] for i in keep], Filter())
        np.testing.assert_array_equal(b.search(queries, 10, Filter())[1], truth)


@pytest.mark.parametrize("kind", ["auto", "exact", "hnsw", "ivf"])
def test_an_index_of_no_rows_opens_and_then_takes_rows(tmp_path, kind):
    write(tmp_path, kind, n=0)
    with open_backend(str(tmp_path)) as b:
        assert b.n == 0 and b.factory == "Flat"  # no rows: nothing to link or to train cells on
        assert (b.search(gallery(8)[0], 5, Filter())[1] == -1).all()
    x, metas = write(tmp_path, kind, n=400)
    with open_backend(str(tmp_path)) as b:
        assert b.n == 400 and b.factory == faiss_kinds.factory_for(kind, 400)
        truth, _ = naive(x[:8], x, metas, Filter())
        np.testing.assert_array_equal(b.search(x[:8], 10, Filter())[1][:, :1], truth[:, :1])


def test_a_second_writer_is_refused_also_through_a_symlink(tmp_path):
    write(tmp_path / "index", "exact", n=40)
    os.symlink(tmp_path / "index", tmp_path / "link")
    with FaissBackend.open(str(tmp_path / "index"), writer=True, model=MODEL):
        with pytest.raises(IndexLockedError, match=r"index .*link is being written by another indexing run \(process"):
            FaissBackend.open(str(tmp_path / "link"), writer=True, model=MODEL)
        with open_backend(str(tmp_path / "link")) as reader:  # readers need no lock
            assert len(reader.live()) == 40
    FaissBackend.open(str(tmp_path / "link"), writer=True, model=MODEL).close()  # released with its holder


TN = 300  # rows of a tampered index


def _sql(folder, *statements):
    db = sqlite3.connect(os.path.join(folder, "catalog.sqlite"))
    for s in statements:
        db.execute(s)
    db.commit()
    db.close()


def _other_faiss(folder, tmp_path, with_sha=False):
    """The FAISS file of another gallery in place of this one's (and, ``with_sha``, its SHA-256 too)."""
    write(tmp_path / "other", "exact", n=TN, seed=1)
    other = next(f for f in os.listdir(tmp_path / "other") if f.endswith(".faiss"))
    mine = next(f for f in os.listdir(folder) if f.endswith(".faiss"))
    shutil.copy(tmp_path / "other" / other, os.path.join(folder, mine))
    if with_sha:
        _sql(folder, f"ATTACH '{tmp_path / 'other' / 'catalog.sqlite'}' AS other",
             "UPDATE info SET value = (SELECT value FROM other.info WHERE key = 'faiss_sha') WHERE key = 'faiss_sha'")


def _forge(folder, tmp_path):
    """A FAISS file of other vectors, with the SHA-256 and digest the catalog expects (as a tool would write)."""
    import hashlib

    import faiss

    from fastreid_val.deploy.catalog import digest

    with open_backend(folder) as b:
        checksums, name = b.checksums, b.info["faiss_file"]
    other = faiss.index_factory(D, "Flat", faiss.METRIC_INNER_PRODUCT)
    other.add(gallery(TN, seed=1)[0])
    data = faiss.serialize_index(other).tobytes()
    open(os.path.join(folder, name), "wb").write(data)
    sha = hashlib.sha256(data).hexdigest()
    _sql(folder, f"UPDATE info SET value = '{sha}' WHERE key = 'faiss_sha'",
         f"UPDATE info SET value = '{digest([sha] + checksums)}' WHERE key = 'faiss_digest'")


TAMPER = {
    "paths of two rows swapped": (lambda f, t: _sql(f, "UPDATE images SET path = 'x' WHERE pos = 1",
                                                    "UPDATE images SET path = '/gallery/00001.jpg' WHERE pos = 2",
                                                    "UPDATE images SET path = '/gallery/00002.jpg' WHERE pos = 1"),
                                  r"catalog.sqlite .*row 1 \(/gallery/00002.jpg\) does not match its checksum"),
    "a camera edited": (lambda f, t: _sql(f, "UPDATE images SET camera = 'c009' WHERE pos = 7"),
                        r"catalog.sqlite .*row 7 .* does not match its checksum"),
    "a row removed": (lambda f, t: _sql(f, "DELETE FROM images WHERE pos = 5"),
                      r"catalog.sqlite .*positions jump from 4 to 6"),
    "a vector truncated": (lambda f, t: _sql(f, "UPDATE images SET vector = substr(vector, 1, 8) WHERE pos = 3"),
                           r"catalog.sqlite .*row 3 has a value of the wrong type or a vector that is not 24 float32"),
    "a timestamp of the wrong type": (lambda f, t: _sql(f, "UPDATE images SET timestamp = 'noon' WHERE pos = 3"),
                                      r"catalog.sqlite .*row 3 has a value of the wrong type"),
    "a column dropped": (lambda f, t: _sql(f, "ALTER TABLE images DROP COLUMN track"),
                         r"catalog.sqlite .*images has columns"),
    "the model's dimension removed": (lambda f, t: _sql(f, "DELETE FROM info WHERE key = 'dim'"),
                                      r"catalog.sqlite .*info lacks dim"),
    "not a database": (lambda f, t: open(os.path.join(f, "catalog.sqlite"), "wb").write(b"x" * 4096),
                       r"catalog.sqlite cannot be read \(file is not a database\)"),
    "the FAISS file of another index": (lambda f, t: _other_faiss(f, t),
                                        r"index-[0-9a-f]{12}.faiss is not the file catalog.sqlite names"),
    "another index's FAISS file with its SHA": (lambda f, t: _other_faiss(f, t, with_sha=True),
                                                r"index-[0-9a-f]{12}.faiss was not built from the rows of catalog.sqlite"),
    "another gallery's vectors in a FAISS file named right": (
        lambda f, t: _forge(f, t), r"index-[0-9a-f]{12}.faiss holds other vectors than the rows of catalog.sqlite"),
    "the FAISS file named outside the folder": (lambda f, t: _sql(f, "UPDATE info SET value = '../x.faiss' "
                                                                     "WHERE key = 'faiss_file'"),
                                                r"is named '../x.faiss' in catalog.sqlite, not index-<id>.faiss"),
}


@pytest.mark.parametrize("case", list(TAMPER))
def test_a_tampered_index_is_refused_in_one_line_naming_the_file(tmp_path, case):
    folder = tmp_path / "index"
    write(folder, "exact", n=TN)
    tamper, message = TAMPER[case]
    tamper(str(folder), tmp_path)
    with pytest.raises(IndexMismatchError, match=message) as e:
        open_backend(str(folder))
    assert "\n" not in str(e.value) and "--rebuild" in str(e.value)
    with FaissBackend.open(str(folder), writer=True, model=MODEL, rebuild=True) as b:  # --rebuild recovers
        assert b.n == 0


def test_the_earlier_format_is_refused_with_a_line_saying_to_reindex(tmp_path):
    (tmp_path / "index.json").write_text('{"format": 1}')
    (tmp_path / "vectors-0123456789ab.faiss").write_bytes(b"")
    for call in (lambda: open_backend(str(tmp_path)), lambda: FaissBackend.open(str(tmp_path), writer=True, model=MODEL)):
        with pytest.raises(IndexMismatchError, match=r"written by an earlier version \(index.json.*--rebuild"):
            call()
    write(tmp_path, "exact", n=20, rebuild=True)
    assert sorted(f for f in os.listdir(tmp_path) if not f.startswith("catalog.sqlite-")) == [
        "catalog.sqlite", next(f for f in os.listdir(tmp_path) if f.endswith(".faiss")), "writer.lock"]
    with pytest.raises(IndexNotFoundError, match=r"no search index in .*nothing \(catalog.sqlite missing\)"):
        open_backend(str(tmp_path / "nothing"))


def test_metadata_from_names_csv_and_vehicle_info(tmp_path):
    assert name_metadata("/x/0201_c005_00000004_0.jpg") == ImageMeta("c005", None, "0201")
    assert name_metadata("/x/car.jpg") == ImageMeta()
    assert parse_time("2018-03-11 10:46:23", "t") == 1520765183.0  # UTC when no zone is given
    assert parse_time("2018-03-11T12:46:23+02:00", "t") == 1520765183.0
    assert parse_time("1520765183.5", "t") == 1520765183.5
    images = [str(tmp_path / n) for n in ("a.jpg", "0001_c002_1_0.jpg", "b.jpg")]
    (tmp_path / "m.csv").write_text("path,camera,timestamp,track\na.jpg,c7,2018-03-11T10:46:23Z,t1\nb.jpg,c8,,\n")
    assert gallery_metadata(images, str(tmp_path / "m.csv")) == [
        ImageMeta("c7", 1520765183.0, "t1"), ImageMeta("c002", None, "0001"), ImageMeta("c8", None, None)]
    for text, message in [("a.jpg,c7,yesterday\n", r"m.csv:1: timestamp 'yesterday' does not parse"),
                          ("a.jpg,c7,5\nnope.jpg,c1,5\n", r"m.csv:2: nope.jpg is not an image of the gallery"),
                          ("a.jpg,,5\n", r"m.csv:1: expected path,camera,timestamp\[,track\] with a camera")]:
        (tmp_path / "m.csv").write_text(text)
        with pytest.raises(MetadataError, match=message):
            gallery_metadata(images, str(tmp_path / "m.csv"))
    wild = tmp_path / "VERI-Wild"
    (wild / "images" / "00003").mkdir(parents=True)
    (wild / "train_test_split").mkdir()
    (wild / "train_test_split" / "vehicle_info.txt").write_text(
        "id/image;Camera ID;Time;Model;Type;Color\n00003/000301;28;2018-03-11 10:46:23;Audi;SUV;White\n")
    image = str(wild / "images" / "00003" / "000301.jpg")
    assert gallery_metadata([image]) == [ImageMeta("28", 1520765183.0, "00003")]  # found beside the gallery
