"""tools/annotate_viewpoints.py without a browser: the pick, the CSV store, the session and its server."""
import http.client
import json
import os
import urllib.error
import urllib.request
from collections import Counter

import pytest
from PIL import Image

from fastreid_val.annotate.select import spread_sample
from fastreid_val.annotate.session import AnnotationSession
from fastreid_val.annotate.server import make_server
from fastreid_val.annotate.store import LabelStore
from fastreid_val.errors import AnnotationLockedError
from fastreid_val.labeller import read_labelled_csv

from .browser import ROOT, start_annotation, stop
from .conftest import run_tool


def test_the_pick_is_spread_over_identities_and_cameras_and_seeded():
    items = [(f"{pid}_{cam}_{k}.jpg", pid, cam) for pid in range(10) for cam in range(4) for k in range(3)]
    pick = spread_sample(items, 30, seed=0)
    ids = [int(p.split("_")[0]) for p in pick]
    assert len(set(pick)) == 30
    assert sorted(ids[:10]) == list(range(10)) and sorted(ids[10:20]) == list(range(10))  # turns by identity
    per_id_cams = {pid: [p.split("_")[1] for p in pick if int(p.split("_")[0]) == pid] for pid in range(10)}
    assert all(len(set(c)) == 3 for c in per_id_cams.values())  # an identity's 3 images: 3 cameras
    first_round = Counter(int(p.split("_")[1]) for p in pick[:10])
    assert max(first_round.values()) - min(first_round.values()) <= 1  # 10 images over 4 cameras: 3, 3, 2, 2
    assert spread_sample(list(reversed(items)), 30, seed=0) == pick  # whatever the order of the items
    assert spread_sample(items, 30, seed=1) != pick
    assert spread_sample(items, 30, seed=0)[:12] == spread_sample(items, 12, seed=0)  # more images extend the pick
    assert sorted(spread_sample(items, 1000, seed=0)) == sorted(p for p, _, _ in items)


def _images(folder, n=3):
    folder.mkdir(exist_ok=True)
    paths = []
    for k in range(n):
        paths.append(str(folder / f"img{k}.jpg"))
        Image.new("RGB", (8, 8), (40 * k, 0, 0)).save(paths[-1])
    return paths


def test_the_store_writes_every_answer_and_refuses_a_second_writer(tmp_path):
    csv = tmp_path / "hand.csv"
    a, b, c = _images(tmp_path / "imgs")
    with LabelStore(str(csv)) as store:
        store.answer(a, 0)
        assert csv.read_text() == f"path,viewpoint\n{a},0\n"
        store.answer(b, -1)
        with pytest.raises(AnnotationLockedError, match=f"hand.csv is open in another annotation .process {os.getpid()}."):
            LabelStore(str(csv))
        assert store.undo() == (b, -1)
        store.answer(b, 1)
        with pytest.raises(ValueError, match="answered already"):
            store.answer(b, 0)
        with pytest.raises(ValueError, match="not in 0..1 or -1"):
            store.answer(c, 2)
    assert not os.path.exists(str(csv) + ".lock") and not [f for f in os.listdir(tmp_path) if f.startswith(".tmp")]
    with LabelStore(str(csv)) as again:  # closed: a new writer goes on with the answers
        assert again.rows == [(a, 0), (b, 1)]
    assert read_labelled_csv(str(csv)) == [(a, 0), (b, 1)]


def test_a_writer_that_locked_a_lock_file_just_removed_takes_the_new_one(tmp_path, monkeypatch):
    """The race of removing a lock file: the closing writer removes it while a new writer has it open but
    has not locked it yet. The new writer must not keep a lock on the removed file, or a third writer, who
    creates a new lock file, would be let in beside it."""
    import fcntl

    from fastreid_val.annotate import store as store_module

    csv = tmp_path / "hand.csv"
    lock_path = str(csv) + ".lock"
    real_flock, calls = fcntl.flock, []

    def flock_after_the_holder_closed(f, op):
        calls.append(f.name)
        if len(calls) == 1:
            os.remove(lock_path)  # what the previous holder's close() did between our open and our flock
        return real_flock(f, op)

    monkeypatch.setattr(store_module.fcntl, "flock", flock_after_the_holder_closed)
    with LabelStore(str(csv)) as store:
        assert len(calls) == 2
        assert os.stat(lock_path).st_ino == os.fstat(store._lock.fileno()).st_ino
        monkeypatch.setattr(store_module.fcntl, "flock", real_flock)
        with pytest.raises(AnnotationLockedError):
            LabelStore(str(csv))
    assert not os.path.exists(lock_path)


def test_the_session_skips_a_bad_image_with_a_note_and_refuses_stale_answers(tmp_path):
    a, b, c = _images(tmp_path / "imgs")
    (tmp_path / "imgs" / "img1.jpg").write_bytes(b"not an image")
    with LabelStore(str(tmp_path / "hand.csv")) as store:
        session = AnnotationSession([a, b, c, str(tmp_path / "gone.jpg")], store)
        s = session.state()
        assert s["current"]["index"] == 0 and s["skipped"] == []
        s = session.answer(0, 1)
        assert s["current"]["index"] == 2  # img1 cannot be decoded: skipped
        assert s["skipped"][0]["path"] == b and "cannot be decoded" in s["skipped"][0]["reason"]
        with pytest.raises(Exception, match="not the one shown now"):
            session.answer(0, 0)
        s = session.answer(2, 0)
        assert s["current"] is None and s["done"] == 4 and s["answered"] == 2  # gone.jpg: skipped too
        assert s["skipped"][1] == {"path": str(tmp_path / "gone.jpg"), "reason": "the file does not exist"}
        assert session.undo()["current"]["index"] == 2


def _post(url, body, content_type="application/json"):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def test_the_server_answers_json_and_serves_only_picked_images(tmp_path):
    a, b, _ = _images(tmp_path / "imgs")
    with LabelStore(str(tmp_path / "hand.csv")) as store:
        server = make_server(AnnotationSession([a, b], store), "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            with urllib.request.urlopen(url + "/", timeout=10) as r:
                assert b"Viewpoint hand labels" in r.read()
            with urllib.request.urlopen(url + "/image/1", timeout=10) as r:
                assert r.headers["Content-Type"] == "image/jpeg" and r.read() == open(b, "rb").read()
            for path in ("/image/2", "/image/..%2Fhand.csv", "/etc/passwd"):
                with pytest.raises(urllib.error.HTTPError, match="404"):
                    urllib.request.urlopen(url + path, timeout=10)
            assert _post(url + "/api/answer", {"index": 0, "viewpoint": 1}, "text/plain")[0] == 415
            status, state = _post(url + "/api/answer", {"index": 0, "viewpoint": 1})
            assert status == 200 and state["current"]["index"] == 1 and store.rows == [(a, 1)]
            assert _post(url + "/api/answer", {"index": 0, "viewpoint": 0})[0] == 409  # pressed twice
            assert _post(url + "/api/answer", {"index": 1, "viewpoint": 5})[0] == 400
            assert store.rows == [(a, 1)]
        finally:
            server.shutdown()
            server.server_close()


def test_the_tool_listens_locally_refuses_a_second_writer_and_a_taken_port(tmp_path, capsys):
    _images(tmp_path / "imgs")
    out = str(tmp_path / "hand.csv")
    proc, url, lines = start_annotation("--images", str(tmp_path / "imgs"), "--output", out)
    try:
        assert url.startswith("http://127.0.0.1:") and lines[0].startswith(f"3 images of {tmp_path / 'imgs'} to label")
        # a page that rebound its own name to 127.0.0.1 (DNS rebinding) reaches the tool, which refuses it
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        for method, path, body in (("GET", "/api/state", None), ("POST", "/api/answer", {"index": 0, "viewpoint": 0})):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request(method, path, body=None if body is None else json.dumps(body),
                         headers={"Host": f"rebound.example:{port}", "Content-Type": "application/json"})
            answer = conn.getresponse()
            assert answer.status == 403 and b"is not a name of this server" in answer.read()
            conn.close()
        assert not os.path.exists(out)
        # a second annotation of the same file, and one on the taken port: the tool's main in this process
        # (the first one, above, is the user's process)
        code, _, err = run_tool("annotate_viewpoints", ["--images", str(tmp_path / "imgs"), "--output", out,
                                                        "--port", "0"], capsys)
        assert code == 2 and "Traceback" not in err
        assert err.strip().splitlines() == [
            f"error: {out} is open in another annotation (process {proc.pid}); close that one first, or choose "
            "another --output"]
        port = url.rstrip("/").rsplit(":", 1)[1]
        code, _, err = run_tool("annotate_viewpoints", ["--images", str(tmp_path / "imgs"), "--output",
                                                        str(tmp_path / "other.csv"), "--port", port], capsys)
        assert code == 2
        assert err.strip().splitlines() == [f"error: cannot listen on 127.0.0.1:{port}: the port is in use; "
                                            "choose another --port or --host"]
        assert not os.path.exists(tmp_path / "other.csv.lock")
        stop(proc)  # SIGTERM: the server shuts down, the tool lets its lock go and exits 0
        assert proc.returncode == 0 and not os.path.exists(out + ".lock")
    finally:
        stop(proc)


def test_the_page_is_package_data():
    import setuptools  # noqa: F401  (provides distutils, and is what installs the package)
    from distutils.core import run_setup

    dist = run_setup(os.path.join(ROOT, "setup.py"), stop_after="init")
    assert "page.html" in dist.package_data.get("fastreid_val.annotate", [])
    assert os.path.isfile(os.path.join(ROOT, "fastreid_val", "annotate", "page.html"))


def test_a_malformed_csv_is_refused_and_left_as_it_is(tmp_path):
    from fastreid_val.errors import AnnotationError

    csv = tmp_path / "hand.csv"
    csv.write_text("path,viewpoint\na.jpg,front\n")
    with pytest.raises(AnnotationError, match="hand.csv:2: viewpoint must be an integer, got 'front'"):
        LabelStore(str(csv))
    assert csv.read_text() == "path,viewpoint\na.jpg,front\n" and not os.path.exists(str(csv) + ".lock")
    csv.write_text("path,viewpoint\na.jpg,0\na.jpg,1\n")
    with pytest.raises(AnnotationError, match="a.jpg is answered twice"):
        LabelStore(str(csv))
