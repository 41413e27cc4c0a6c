"""The web layer (fastreid_val/web) under the annotation page, probed over real sockets as a rebinding page,
a careless script or a slow client would: a foreign Host or Origin, bodies that are too large, too slow,
not strict JSON or of the wrong types, files that are not images. Each gets its 4xx with a JSON reason and
``nosniff``, and the labels CSV is never touched."""
import http.client
import json
import os
import shutil
import socket
import time

import pytest
from PIL import Image
from starlette.responses import JSONResponse
from starlette.routing import Route

from fastreid_val.annotate.server import make_server
from fastreid_val.annotate.session import AnnotationSession
from fastreid_val.annotate.store import LabelStore
from fastreid_val.web import LocalServer, allowed_hosts, int_field, local_app, read_json
from fastreid_val.web.body import parse_json
from fastreid_val.web.guard import host_name

CORPUS = os.path.join(os.path.dirname(__file__), "data", "bad_inputs")


def request(port, method, path, body=None, headers=None, host=None):
    """(status, headers, body) of one request over a fresh connection; ``host`` replaces the Host header."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    hdrs = dict(headers or {})
    if host is not None:
        conn.putrequest(method, path, skip_host=True)
        conn.putheader("Host", host)
    else:
        conn.putrequest(method, path)
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    if data is not None:
        hdrs.setdefault("Content-Type", "application/json")
        hdrs.setdefault("Content-Length", str(len(data)))
    for k, v in hdrs.items():
        conn.putheader(k, v)
    conn.endheaders()
    if data:
        conn.send(data)
    r = conn.getresponse()
    out = (r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    conn.close()
    return out


@pytest.fixture
def annotator(tmp_path):
    """The annotation page's server on a free port over 3 real images, a text file and an HTML page
    listed as images, and a PPM named .png: (port, store, csv path)."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    paths = []
    for k in range(3):
        paths.append(str(folder / f"car{k}.jpg"))
        Image.new("RGB", (16, 12), (60 * k, 20, 90)).save(paths[-1])
    passwd = folder / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\n")
    html = folder / "notes.html"
    shutil.copy(os.path.join(CORPUS, "notes.html"), html)
    ppm = folder / "odd.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(ppm, format="PPM")
    csv = tmp_path / "hand.csv"
    with LabelStore(str(csv)) as store:
        server = make_server(AnnotationSession([*paths, str(passwd), str(html), str(ppm)], store), "127.0.0.1", 0)
        server.start()
        try:
            yield server.server_address[1], store, csv
        finally:
            server.shutdown()
            server.server_close()


def test_a_foreign_host_or_origin_is_refused_with_403_and_nothing_written(annotator, caplog):
    port, store, csv = annotator
    evil = f"evil.example:{port}"
    for method, path, body in (("GET", "/api/state", None), ("GET", "/image/0", None), ("GET", "/", None),
                               ("POST", "/api/answer", {"index": 0, "viewpoint": 1}), ("POST", "/api/undo", {})):
        status, headers, data = request(port, method, path, body, host=evil)
        assert status == 403 and headers["x-content-type-options"] == "nosniff"
        assert json.loads(data)["error"].startswith("Host 'evil.example:%d' is not a name of this server" % port)
        status, _, data = request(port, method, path, body, headers={"Origin": "http://evil.example"})
        assert status == 403 and "Origin 'http://evil.example' is not a page of this server" in json.loads(data)["error"]
    assert request(port, "POST", "/api/undo", {}, headers={"Origin": f"http://127.0.0.1:{port + 1}"})[0] == 403
    assert "refused GET /api/state: Host 'evil.example:%d' is not a name of this server" % port in caplog.text
    assert store.rows == [] and not csv.exists()
    # its own names are served: the address, localhost, and a request from its own page
    assert request(port, "GET", "/api/state", host=f"localhost:{port}")[0] == 200
    status, _, data = request(port, "POST", "/api/answer", {"index": 0, "viewpoint": 1},
                              headers={"Origin": f"http://127.0.0.1:{port}"})
    assert status == 200 and store.rows == [(store.rows[0][0], 1)]


@pytest.mark.parametrize("body, reason", [
    (b'{"index": Infinity, "viewpoint": 0}', "not valid JSON (Infinity is not a JSON number"),
    (b'{"index": NaN, "viewpoint": 0}', "not valid JSON (NaN is not a JSON number"),
    (b'{"index": 1e400, "viewpoint": 0}', "not valid JSON (1e400 is not a finite number"),
    (b"[" * 8000 + b"]" * 8000, "the JSON is nested deeper than 8 levels"),  # a RecursionError for json.loads
    (b'{"index": ' + b"9" * 5000 + b', "viewpoint": 0}', "not valid JSON ("),
    (b'{"index": 0.9, "viewpoint": 0}', "index must be an integer in 0..5, got 0.9"),
    (b'{"index": "0", "viewpoint": 0}', 'index must be an integer in 0..5, got "0"'),
    (b'{"index": 0, "viewpoint": true}', "viewpoint must be an integer in -1..1, got true"),
    (b'{"index": 0, "viewpoint": 5}', "viewpoint must be an integer in -1..1, got 5"),
    (b'{"index": 0, "index": 0, "viewpoint": 0}', "key 'index' appears twice"),
    (b'{"viewpoint": 0}', "index is missing"),
    (b'[0, 1]', "expected a JSON object, got list"),
    (b'\xff\xfe', "the body is not UTF-8"),
])
def test_a_body_that_is_not_strict_json_of_exact_types_is_400_with_the_reason(annotator, body, reason):
    port, store, csv = annotator
    status, headers, data = request(port, "POST", "/api/answer", body)
    assert status == 400 and headers["content-type"] == "application/json", data[:300]
    assert reason in json.loads(data)["error"]
    assert store.rows == [] and not csv.exists()


def test_sizes_and_types_of_requests(annotator):
    port, store, csv = annotator
    status, _, data = request(port, "POST", "/api/answer", b"{}", headers={"Content-Length": str(10 ** 15)})
    assert status == 413 and "larger than 16384 bytes" in json.loads(data)["error"]
    status, _, data = request(port, "POST", "/api/answer", b"x" * 20000)
    assert status == 413
    assert request(port, "POST", "/api/answer", b'{"index": 0, "viewpoint": 1}',
                   headers={"Content-Type": "text/plain"})[0] == 415
    assert request(port, "GET", "/api/answer")[0] == 405
    assert request(port, "GET", "/nowhere")[0] == 404
    assert store.rows == [] and not csv.exists()


def test_only_images_that_decode_are_served_with_the_type_their_decoding_gives(annotator):
    port, _, _ = annotator
    status, headers, data = request(port, "GET", "/image/0")
    assert status == 200 and headers["content-type"] == "image/jpeg" and data[:2] == b"\xff\xd8"
    assert headers["x-content-type-options"] == "nosniff"
    status, headers, _ = request(port, "GET", "/image/5")  # a PPM named .png: its decoding says what it is
    assert status == 200 and headers["content-type"] == Image.MIME["PPM"] != "image/png"
    for index in (3, 4, 6, -1):  # /etc/passwd-like text, an HTML page, past the pick, not a number
        status, headers, data = request(port, "GET", f"/image/{index}")
        assert status == 404 and headers["content-type"] == "application/json" and b"root:" not in data
    state = json.loads(request(port, "GET", "/api/state")[2])
    assert {os.path.basename(s["path"]) for s in state["skipped"]} == {"passwd", "notes.html"}


def _slow_app(timeout):
    async def echo(request):
        return JSONResponse({"index": int_field(await read_json(request), "index", 0, 9)})

    return local_app([Route("/echo", echo, methods=["POST"])], allowed_hosts("127.0.0.1"), max_body=1024,
                     body_timeout=timeout)


def _read_all(sock):
    """What the server sends until it closes the connection."""
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            sock.close()
            return data
        data += chunk


def test_slow_idle_and_malformed_clients_get_an_answer_or_are_closed_and_hold_nothing():
    server = LocalServer(_slow_app(0.5), "127.0.0.1", 0, idle_timeout=0.5, header_timeout=1.0).start()
    port = server.server_address[1]
    try:
        idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(50)]
        assert request(port, "POST", "/echo", {"index": 3})[2] == b'{"index":3}'  # 50 idle connections hold nothing
        for s in idle:  # ... and are closed once the head deadline passes
            assert s.recv(100) == b""
            s.close()
        # a body shorter than its Content-Length: 408 once the body timeout passes, not a stuck request
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{\"index\"")
        answer = _read_all(s)
        assert answer.startswith(b"HTTP/1.1 408") and b"did not arrive within 0.5 s" in answer
        # a head sent a byte at a time, slower than the deadline: closed
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            for ch in b"GET /echo HTTP/1.1\r\n":  # 4 s at this pace, the deadline 1 s
                s.send(bytes([ch]))
                time.sleep(0.2)
            closed = s.recv(100) == b""
        except (BrokenPipeError, ConnectionResetError):  # closed while it was still sending
            closed = True
        s.close()
        assert closed
        # not HTTP at all: 400 from the parser, not a dropped connection
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"\x16\x03\x01 this is no request\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 400")
        s.close()
    finally:
        server.shutdown()
        server.server_close()


def test_parse_json_and_host_names_directly():
    assert parse_json(b"") == {} and parse_json(b'{"a": [1, {"b": "[[[["}]}') == {"a": [1, {"b": "[[[["}]}
    assert host_name("127.0.0.1:8765") == "127.0.0.1" and host_name("[::1]:80") == "::1"
    assert host_name("LocalHost") == "localhost" and host_name("::1") == "::1"
    assert allowed_hosts("0.0.0.0", ["box.lan"]) == {"localhost", "127.0.0.1", "::1", "box.lan"}
    assert "10.0.0.5" in allowed_hosts("10.0.0.5")


def _multipart(field, filename, data, boundary="fastreid-val-boundary"):
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def test_an_upload_is_accepted_only_as_one_image_that_decodes(tmp_path):
    from fastreid_val.web import image_upload

    async def upload(request):
        data, content_type = await image_upload(request)
        return JSONResponse({"bytes": len(data), "type": content_type})

    app = local_app([Route("/upload", upload, methods=["POST"])], allowed_hosts("127.0.0.1"), max_body=64 * 1024)
    server = LocalServer(app, "127.0.0.1", 0).start()
    port = server.server_address[1]
    png = tmp_path / "car.jpg"  # a PNG named .jpg: the answer says what it is
    Image.new("RGB", (20, 10), (200, 30, 30)).save(png, format="PNG")
    try:
        status, _, data = request(port, "POST", "/upload", *_multipart("image", "car.jpg", png.read_bytes()))
        assert status == 200 and json.loads(data) == {"bytes": png.stat().st_size, "type": "image/png"}
        html = open(os.path.join(CORPUS, "notes.html"), "rb").read()
        status, _, data = request(port, "POST", "/upload", *_multipart("image", "notes.html", html))
        assert status == 400 and "the upload is not an image" in json.loads(data)["error"]
        status, _, data = request(port, "POST", "/upload", *_multipart("other", "car.jpg", png.read_bytes()))
        assert status == 400 and "no file in the field 'image'" in json.loads(data)["error"]
        bomb = open(os.path.join(CORPUS, "bomb.png"), "rb").read()
        status, _, data = request(port, "POST", "/upload", *_multipart("image", "bomb.png", bomb))
        assert status == 400 and "DecompressionBombError" in json.loads(data)["error"]
        status, _, data = request(port, "POST", "/upload", *_multipart("image", "big.png", b"\0" * 70000))
        assert status == 413
        status, _, data = request(port, "POST", "/upload", b'{"image": 1}')
        assert status == 415
        body, headers = _multipart("image", "car.jpg", png.read_bytes())
        status, _, data = request(port, "POST", "/upload", body[:-20], headers=headers)  # cut short
        assert status == 400
    finally:
        server.shutdown()
        server.server_close()
