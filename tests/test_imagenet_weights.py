"""ImageNet weights for FastReID's ResNet backbones: FastReID's cache, one atomic and checked download per
machine from a server on 127.0.0.1, the offline message, and every backbone tensor filled or a stop."""
import hashlib
import http.server
import multiprocessing
import os
import subprocess
import sys
import threading
import time

import pytest

from fastreid_val.engine import build_config
from fastreid_val.errors import MissingFileError, PretrainedWeightsError
from fastreid_val.modeling import imagenet

from .trees import imagenet_file

ROOT = os.path.join(os.path.dirname(__file__), "..")
CLOSED = "http://127.0.0.1:9/"  # the discard port: nothing listens there, the connection is refused


class _Handler(http.server.SimpleHTTPRequestHandler):
    truncate = False  # announce the whole file, send half of it

    def log_message(self, *args):
        pass

    def do_GET(self):
        data = open(os.path.join(self.server.folder, os.path.basename(self.path)), "rb").read()
        self.server.requests += 1
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2] if self.server.truncate else data)


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving ``tmp_path/served``; yields (base URL, server)."""
    folder = tmp_path / "served"
    folder.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.folder, httpd.requests, httpd.truncate = str(folder), 0, False
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", httpd
    httpd.shutdown()


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setenv(imagenet.MIRROR_ENV, CLOSED)
    return home


def _serve_named_by_hash(httpd, name="resnet18", body=b"weights" * 1000):
    """A file whose name carries its SHA-256 prefix, as PyTorch names its model files."""
    file_name = f"{name}-{hashlib.sha256(body).hexdigest()[:8]}.pth"
    with open(os.path.join(httpd.folder, file_name), "wb") as f:
        f.write(body)
    return file_name, body


def _cache_is_clean(torch_home, name):
    folder = torch_home / "checkpoints"
    return not (folder / name).exists() and not [p for p in os.listdir(folder) if p.endswith(".part")]


def test_the_url_is_fastreids_and_the_mirror_replaces_its_folder(monkeypatch):
    monkeypatch.delenv(imagenet.MIRROR_ENV, raising=False)
    assert imagenet.weights_url(build_config("configs/VeRi/val_r50.yml")) == \
        "https://download.pytorch.org/models/resnet50-19c8e357.pth"
    ibn = build_config("configs/VeRi/sbs_R50-ibn.yml")
    assert imagenet.weights_url(ibn).endswith("/IBN-Net/releases/download/v1.0/resnet50_ibn_a-d9d0bb7b.pth")
    monkeypatch.setenv(imagenet.MIRROR_ENV, "http://127.0.0.1:8000/weights/")
    assert imagenet.weights_url(ibn) == "http://127.0.0.1:8000/weights/resnet50_ibn_a-d9d0bb7b.pth"


def test_a_file_in_fastreids_cache_is_used_without_network(torch_home):
    path = torch_home / "checkpoints" / "resnet50-19c8e357.pth"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"cached")
    assert imagenet.cached_weights(CLOSED + "resnet50-19c8e357.pth") == str(path)


def test_torchvisions_cache_serves_the_same_file_name(torch_home):
    hub = torch_home / "hub" / "checkpoints" / "resnet50-19c8e357.pth"
    hub.parent.mkdir(parents=True)
    hub.write_bytes(b"cached by torchvision")
    assert imagenet.cached_weights(CLOSED + "resnet50-19c8e357.pth") == str(hub)


def test_download_is_checked_and_atomic(torch_home, server):
    base, httpd = server
    name, body = _serve_named_by_hash(httpd)
    path = imagenet.cached_weights(base + name, progress=False)
    assert path == str(torch_home / "checkpoints" / name) and open(path, "rb").read() == body
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"
    imagenet.cached_weights(base + name)  # now a cache hit
    assert httpd.requests == 1


def test_corrupted_download_is_refused_and_nothing_kept(torch_home, server):
    base, httpd = server
    name, _ = _serve_named_by_hash(httpd)
    with open(os.path.join(httpd.folder, name), "ab") as f:
        f.write(b"flipped")
    with pytest.raises(PretrainedWeightsError, match=f"SHA-256 .* does not start with {name[9:17]}"):
        imagenet.cached_weights(base + name, progress=False)
    assert _cache_is_clean(torch_home, name)


def test_only_pytorchs_model_store_is_held_to_the_hash_in_the_name():
    assert "resnet50_ibn_a-d9d0bb7b.pth" in imagenet.UNVERIFIED_NAMES
    assert not {"resnet50-19c8e357.pth", "resnet18-5c106cde.pth"} & imagenet.UNVERIFIED_NAMES


def test_an_ibn_file_whose_name_is_not_its_hash_is_kept_when_it_loads(torch_home, server, caplog):
    """IBN-Net's release names look like hash prefixes, but nothing says they are: a file that loads is kept."""
    import io

    import torch

    base, httpd = server
    name = "resnet18_ibn_a-2f571257.pth"
    buffer = io.BytesIO()
    torch.save({"conv1.weight": torch.zeros(2, 3)}, buffer)
    assert not hashlib.sha256(buffer.getvalue()).hexdigest().startswith("2f571257")
    with open(os.path.join(httpd.folder, name), "wb") as f:
        f.write(buffer.getvalue())
    with caplog.at_level("WARNING", logger="fastreid_val.modeling.imagenet"):
        path = imagenet.cached_weights(base + name, progress=False)
    assert torch.load(path)["conv1.weight"].shape == (2, 3)
    assert "not known to carry its hash" in caplog.text


def test_an_ibn_file_that_does_not_load_is_refused_and_nothing_kept(torch_home, server):
    base, httpd = server
    name = "resnet18_ibn_a-2f571257.pth"
    with open(os.path.join(httpd.folder, name), "wb") as f:
        f.write(b"<html>rate limited</html>")
    with pytest.raises(PretrainedWeightsError, match="not a weights file torch.load reads"):
        imagenet.cached_weights(base + name, progress=False)
    assert _cache_is_clean(torch_home, name)


def test_truncated_download_is_refused_and_nothing_kept(torch_home, server):
    base, httpd = server
    name, _ = _serve_named_by_hash(httpd)
    httpd.truncate = True
    with pytest.raises((PretrainedWeightsError, MissingFileError), match="stopped after|cannot download"):
        imagenet.cached_weights(base + name, progress=False)
    assert _cache_is_clean(torch_home, name)


def test_offline_is_one_line_with_url_cache_path_and_alternative(torch_home):
    start = time.perf_counter()
    with pytest.raises(MissingFileError) as e:
        imagenet.cached_weights(CLOSED + "resnet50-19c8e357.pth")
    assert time.perf_counter() - start < 10
    msg = str(e.value)
    assert "\n" not in msg and CLOSED + "resnet50-19c8e357.pth" in msg
    assert f"put that file at {torch_home / 'checkpoints' / 'resnet50-19c8e357.pth'}" in msg
    assert "MODEL.BACKBONE.PRETRAIN_PATH" in msg


def _fetch(url, torch_home, queue):
    os.environ["TORCH_HOME"] = torch_home
    queue.put(imagenet.cached_weights(url, progress=False))


def test_two_processes_at_once_download_once(torch_home, server):
    base, httpd = server
    name, body = _serve_named_by_hash(httpd, body=os.urandom(3 << 20))
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_fetch, args=(base + name, str(torch_home), queue)) for _ in range(2)]
    for p in procs:
        p.start()
    paths = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert paths[0] == paths[1] and open(paths[0], "rb").read() == body
    assert httpd.requests == 1  # the second process waited for the first one's file


def test_a_plain_resnet_file_for_an_ibn_config_is_refused(tmp_path):
    # FastReID would load it with strict=False and train with random IBN layers.
    plain = imagenet_file(str(tmp_path / "r50.pth"))
    cfg = build_config("configs/VeRi/sbs_R50-ibn.yml", ["MODEL.BACKBONE.PRETRAIN_PATH", plain])
    with pytest.raises(PretrainedWeightsError, match=r"missing \['layer1.0.bn1.BN.bias'"):
        imagenet.resolve_imagenet_weights(cfg)


def test_only_the_classifier_and_the_new_non_local_blocks_may_differ(tmp_path, caplog):
    ibn = imagenet_file(str(tmp_path / "r50_ibn.pth"), with_ibn=True)
    cfg = build_config("configs/VeRi/sbs_R50-ibn.yml", ["MODEL.BACKBONE.PRETRAIN_PATH", ibn])  # WITH_NL True
    with caplog.at_level("INFO", logger="fastreid_val.modeling.imagenet"):
        imagenet.resolve_imagenet_weights(cfg)
    assert cfg.MODEL.BACKBONE.PRETRAIN_PATH == ibn
    assert "except the new layers NL_2, NL_3" in caplog.text and "classifier (fc) is dropped" in caplog.text


def test_a_truncated_cached_file_is_refused_with_its_path(tmp_path):
    bad = tmp_path / "resnet50-19c8e357.pth"
    bad.write_bytes(open(imagenet_file(str(tmp_path / "good.pth")), "rb").read()[:1000])
    cfg = build_config("configs/VeRi/val_r50.yml", ["MODEL.BACKBONE.PRETRAIN_PATH", str(bad)])
    with pytest.raises(PretrainedWeightsError, match=f"{bad} cannot be read"):
        imagenet.resolve_imagenet_weights(cfg)


def test_new_user_offline_gets_one_line(tmp_path):
    """``train_net.py --config-file configs/VeRi/val_r50.yml`` with no weights anywhere and no network."""
    from .trees import veri_tree

    veri_tree(str(tmp_path / "datasets"))
    env = dict(os.environ, FASTREID_DATASETS=str(tmp_path / "datasets"), TORCH_HOME=str(tmp_path / "th"))
    env[imagenet.MIRROR_ENV] = CLOSED
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools/train_net.py"), "--config-file",
                           os.path.join(ROOT, "configs/VeRi/val_r50.yml"), "OUTPUT_DIR", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot download ImageNet weights") and "resnet50-19c8e357.pth" in last
    assert str(tmp_path / "th" / "checkpoints" / "resnet50-19c8e357.pth") in last
    # the plugin's own log lines reach the console and log.txt, as FastReID's do
    assert "fastreid_val.modeling.imagenet]: Downloading ImageNet weights" in proc.stdout
    assert "Downloading ImageNet weights" in (tmp_path / "out" / "log.txt").read_text()
