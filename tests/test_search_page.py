"""The search page's JSON API (fastreid_val/search_page) on a real server on 127.0.0.1, in this process:
searches by row and by upload against a naive ranking under each filter, thumbnails by row only, and each
refusal (foreign Host, upload too large or not an image, a row that is no image, bad filter values) a 4xx
with a JSON reason a user can act on."""
import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from fastreid_val.deploy.backend import open_backend
from fastreid_val.deploy.embedder import OnnxEmbedder
from fastreid_val.search_page import SearchService, make_server

from .search_gallery import DELETED, START, build_index
from .test_search_ingest import tiny_model  # noqa: F401  (the fixture)

MAX_UPLOAD = 64 * 1024


@pytest.fixture(scope="module")
def page(tiny_model, tmp_path_factory):  # noqa: F811
    """(base URL, gallery folder, names by row, stored vectors by row) of the page over build_index's index."""
    gallery, index, names = build_index(tmp_path_factory.mktemp("search_page"), tiny_model)
    backend = open_backend(index)
    vectors = backend.vectors(list(range(len(names))))
    server = make_server(SearchService(backend, OnnxEmbedder(tiny_model), index), port=0, max_upload=MAX_UPLOAD).start()
    try:
        yield server.url.rstrip("/"), gallery, names, vectors
    finally:
        server.shutdown()
        server.server_close()
        backend.close()


def naive(vectors, names, query, k, keep):
    """Rows of the k nearest live images passing ``keep(row)``, by cosine distance."""
    distance = 1 - vectors @ query
    rows = [r for r in np.argsort(distance, kind="stable") if r != DELETED and keep(r)][:k]
    return [int(r) for r in rows], distance[rows]


def camera(name):
    return name.split("_")[1]


def test_index_listing_and_thumbnails_by_row(page):
    url, _, names, _ = page
    summary = httpx.get(f"{url}/api/index").json()
    assert (summary["images"], summary["last_row"], summary["cameras"], summary["kind"]) == \
        (29, 29, ["c001", "c002", "c003"], "Flat")
    assert (summary["since"], summary["until"], summary["camera_embedding"]) == \
        ("2026-01-01T00:00:00Z", "2026-01-01T00:29:00Z", False)
    listing = httpx.get(f"{url}/api/rows", params={"start": 13, "count": 3}).json()  # the 14th to 16th live rows
    assert listing["total"] == 29 and [r["row"] for r in listing["rows"]] == [13, 14, 16]
    listing = httpx.get(f"{url}/api/rows", params={"start": 26, "count": 5}).json()
    assert [r["row"] for r in listing["rows"]] == [27, 28, 29]
    assert listing["rows"][0] == {"row": 27, "name": names[27], "camera": camera(names[27]),
                                  "time": "2026-01-01T00:27:00Z", "timestamp": START + 27 * 60.0}
    r = httpx.get(f"{url}/api/image/3")
    assert (r.status_code, r.headers["content-type"], r.headers["x-content-type-options"]) == (200, "image/png", "nosniff")
    assert Image.open(io.BytesIO(r.content)).size == (8, 8)
    for path in ("/api/image/15", "/api/image/30", "/api/image/-1", "/api/image/..%2Fmeta.csv"):  # deleted, past, none
        r = httpx.get(url + path)
        assert r.status_code == 404 and "error" in r.json(), path


def test_search_by_row_is_the_exact_filtered_top_k(page):
    url, _, names, vectors = page

    def search(**body):
        r = httpx.post(f"{url}/api/search", json=body)
        assert r.status_code == 200, r.text
        return r.json()

    got = search(row=4, k=5)
    want, dist = naive(vectors, names, vectors[4], 5, lambda r: True)
    assert [m["row"] for m in got["results"]] == want and want[0] == 4 and got["filter"] == "none"
    np.testing.assert_allclose([m["distance"] for m in got["results"]], dist, atol=1e-5)
    assert got["results"][0]["identity"] == names[4][:4] and got["query"]["camera"] == "c002"

    got = search(row=4, k=8, exclude_same_camera=True)  # the row's own camera, c002
    want, _ = naive(vectors, names, vectors[4], 8, lambda r: camera(names[r]) != "c002")
    assert [m["row"] for m in got["results"]] == want and all(m["camera"] != "c002" for m in got["results"])

    got = search(row=4, k=20, exclude_same_camera=True, query_camera="c001", cameras=["c001", "c002"],
                 since="2026-01-01T00:05:00Z", until=START + 20 * 60)
    want, _ = naive(vectors, names, vectors[4], 20, lambda r: camera(names[r]) == "c002" and 5 <= r <= 20)
    assert [m["row"] for m in got["results"]] == want and len(want) == 5  # c002 rows 7, 10, 13, 16, 19


def test_an_upload_is_embedded_and_searched_like_the_indexed_image(page):
    url, gallery, names, _ = page
    with open(f"{gallery}/{names[10]}", "rb") as f:
        data = f.read()
    r = httpx.post(f"{url}/api/search/upload", files={"image": ("mine.png", data, "image/png")},
                   data={"filters": json.dumps({"k": 3, "cameras": ["c002"]})})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["results"][0]["row"] == 10 and got["results"][0]["distance"] == pytest.approx(0, abs=1e-5)
    assert got["query"]["row"] is None and {m["camera"] for m in got["results"]} == {"c002"}


def _png(size):
    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize("request_, status, reason", [
    ({"json": {"row": 15}}, 404, "no indexed image has row 15"),  # deleted
    ({"json": {"row": 30}}, 400, "row must be an integer in 0..29"),
    ({"json": {"row": "3"}}, 400, "row must be an integer in 0..29"),
    ({"json": {"row": 3, "k": 0}}, 400, "k must be an integer in 1..100"),
    ({"json": {"row": 3, "cameras": ["c009"]}}, 400, "unknown camera c009; the index holds c001, c002, c003"),
    ({"json": {"row": 3, "cameras": "c001"}}, 400, "cameras must be a list"),
    ({"json": {"row": 3, "since": "yesterday"}}, 400, "since: timestamp 'yesterday' does not parse"),
    ({"json": {"row": 3, "since": START + 60, "until": START}}, 400, "--since is after --until"),
    ({"json": {"row": 3, "exclude_same_camera": "yes"}}, 400, "exclude_same_camera must be true or false"),
    ({"json": {"row": 3, "path": "/etc/passwd"}}, 400, "unknown field path"),
    ({"content": b"row=3"}, 415, "send JSON"),
])
def test_bad_searches_are_answered_with_what_to_fix(page, request_, status, reason):
    r = httpx.post(f"{page[0]}/api/search", **request_)
    assert r.status_code == status and reason in r.json()["error"], r.text


def test_refusals_foreign_host_large_or_non_image_upload(page):
    url = page[0]
    r = httpx.get(f"{url}/api/index", headers={"Host": "attacker.example"})
    assert r.status_code == 403 and "is not a name of this server" in r.json()["error"]
    upload = f"{url}/api/search/upload"
    r = httpx.post(upload, files={"image": ("big.png", _png(200), "image/png")})  # ~120 KB > 64 KiB
    assert r.status_code == 413 and "larger than 65536 bytes" in r.json()["error"]
    r = httpx.post(upload, files={"image": ("car.png", b"<html>not an image</html>", "image/png")})
    assert r.status_code == 400 and "the upload is not an image" in r.json()["error"]
    r = httpx.post(upload, files={"image": ("car.png", _png(8), "image/png")}, data={"filters": "{k: 3}"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
    r = httpx.post(upload, files={"image": ("car.png", _png(8), "image/png")},
                   data={"filters": json.dumps({"exclude_same_camera": True})})  # an upload has no camera of its own
    assert r.status_code == 400 and "the camera of query the uploaded image is unknown" in r.json()["error"]


def test_the_tool_stops_in_one_line_on_a_missing_index_or_another_models(tiny_model, tmp_path, capsys):  # noqa: F811
    from .conftest import run_tool

    code, out, err = run_tool("search_server", ["--index", str(tmp_path / "none"), "--weights", tiny_model], capsys)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "none" in err, err
    _, index, _ = build_index(tmp_path, tiny_model)
    other = tmp_path / "other.onnx"
    other.write_bytes(open(tiny_model, "rb").read().replace(b"tiny16", b"tiny17"))  # another fingerprint
    code, out, err = run_tool("search_server", ["--index", index, "--weights", str(other)], capsys)
    assert code == 2 and "was built by another model" in err and err.count("\n") == 1, err
