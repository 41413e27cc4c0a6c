"""Search: the query's identity first (oracle embedding, exact, HNSW and IVF), index update embeds only new or
changed images, another model's index is refused, checkpoint and ONNX agree, --exclude-same-camera on the
main job's model returns no image of the query's camera, and each bad input ends in one line with exit
status 2."""
import os
import re
import shutil
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from fastreid_val.data.synthveri import ensure_synthveri
from fastreid_val.deploy.backend import open_backend
from fastreid_val.deploy.embedder import Embedder
from fastreid_val.deploy.images import list_images, veri_identity
from fastreid_val.deploy.search import query_index, update_index
from fastreid_val.errors import IndexMismatchError
from fastreid_val.weights_file import load_weights_file

from .conftest import TINY, run_tool

ROOT = os.path.join(os.path.dirname(__file__), "..")


class Oracle(Embedder):
    """A perfect model: a one-hot of the identity read from the VeRi-style file name, plus noise.

    Same identity: cosine ~0.86; other identities: ~0. Records which images it embedded.
    """

    def __init__(self, fingerprint="oracle", dim=64):
        self.dim, self.fingerprint, self.description = dim, fingerprint, f"oracle {fingerprint}"
        self.embedded = []

    def embed(self, paths, batch_size=32, progress=False, desc=""):
        self.embedded += list(paths)
        out = np.zeros((len(paths), self.dim), dtype=np.float32)
        for i, p in enumerate(paths):
            out[i] = 0.05 * np.random.default_rng(zlib.crc32(os.path.basename(p).encode())).standard_normal(self.dim)
            out[i, int(veri_identity(p)) % self.dim] += 1.0
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def _split(datasets_root):
    data = ensure_synthveri(datasets_root, TINY)
    queries = list_images(os.path.join(data, "image_query"))
    names = {os.path.basename(q) for q in queries}
    gallery = [g for g in list_images(os.path.join(data, "image_test")) if os.path.basename(g) not in names]
    return queries, gallery


@pytest.mark.parametrize("kind", ["exact", "hnsw", "ivf"])
def test_oracle_finds_the_query_identity_first(datasets_root, tmp_path, kind):
    queries, gallery = _split(datasets_root)
    assert len(gallery) == 48 and len(queries) == 48
    oracle = Oracle()
    up = update_index(oracle, gallery, str(tmp_path), kind=kind, nlist=4)
    assert (up.total, up.new, up.factory) == (48, 48, {"exact": "Flat", "hnsw": "HNSW32,Flat", "ivf": "IVF4,Flat"}[kind])
    results = query_index(oracle, str(tmp_path), queries, top_k=5)
    for r in results:
        assert r.matches[0].identity == r.identity, r.path
        assert [m.rank for m in r.matches] == [1, 2, 3, 4, 5]
        assert all(a.distance <= b.distance for a, b in zip(r.matches, r.matches[1:]))


def _stored(index):
    with open_backend(index) as b:
        rows = b.live()
        paths = sorted(rows, key=lambda p: rows[p]["pos"])
        return paths, dict(zip(paths, b.vectors([rows[p]["pos"] for p in paths])))


def test_update_embeds_only_new_and_changed_images(datasets_root, tmp_path):
    _, gallery = _split(datasets_root)
    folder, index = tmp_path / "gallery", str(tmp_path / "index")
    folder.mkdir()
    for p in gallery[:10]:
        shutil.copy(p, folder)
    oracle = Oracle()
    assert update_index(oracle, list_images(str(folder)), index).new == 10 and len(oracle.embedded) == 10
    _, kept = _stored(index)

    oracle.embedded.clear()  # unchanged gallery: nothing embedded, nothing written
    assert update_index(oracle, list_images(str(folder)), index).written is False and not oracle.embedded

    for p in gallery[10:13]:  # 3 new
        shutil.copy(p, folder)
    files = sorted(folder.iterdir())
    changed = files[0]
    changed.write_bytes(open(gallery[20], "rb").read())  # same name, another picture
    os.utime(changed, ns=(1, 1))
    for f in files[1:3]:  # 2 removed
        f.unlink()
    up = update_index(oracle, list_images(str(folder)), index)
    assert (up.total, up.new, up.changed, up.removed) == (11, 3, 1, 2)
    assert sorted(os.path.basename(p) for p in oracle.embedded) == sorted(
        [changed.name] + [os.path.basename(p) for p in gallery[10:13]])
    paths, after = _stored(index)
    assert sorted(paths) == list_images(str(folder))
    for path, v in after.items():
        if path in kept and path != str(changed):
            np.testing.assert_array_equal(v, kept[path])

    oracle.embedded.clear()  # switching to IVF re-uses the stored features
    up = update_index(oracle, list_images(str(folder)), index, kind="ivf")
    assert up.factory == "IVF1,Flat" and not oracle.embedded and open_backend(index).factory == "IVF1,Flat"


def test_index_of_another_model_is_refused(datasets_root, tmp_path):
    queries, gallery = _split(datasets_root)
    update_index(Oracle("A"), gallery[:8], str(tmp_path))
    for call in (lambda: query_index(Oracle("B"), str(tmp_path), queries[:1]),
                 lambda: update_index(Oracle("B"), gallery[:8], str(tmp_path))):
        with pytest.raises(IndexMismatchError, match=r"built by another model \(oracle A.*--rebuild"):
            call()
    assert update_index(Oracle("B"), gallery[:8], str(tmp_path), rebuild=True).new == 8
    with open_backend(str(tmp_path)) as b:
        assert b.model["fingerprint"] == "B"


def test_checkpoint_and_onnx_search_agree(tiny_run, tiny_onnx, tmp_path, capsys):
    config, opts, weights, data = tiny_run
    index, out = str(tmp_path / "index"), str(tmp_path / "results")
    gallery = os.path.join(data, "image_test")
    query = list_images(gallery)[5]  # a gallery image: it must come first, at distance ~0
    code, stdout, err = run_tool("search", ["--config-file", config, "--weights", weights, "--index", index,
                                            "--gallery", gallery, "--query", query, "--top-k", "5", "--out", out,
                                            *opts], capsys)
    assert code == 0, err
    assert "96 images (96 new, 0 changed, 0 removed; Flat, 1280-d): written" in stdout
    first = [line.split() for line in stdout.splitlines() if line.strip().startswith("1 ")][0]
    assert os.path.abspath(first[5]) == query and float(first[1]) < 1e-4
    code, onnx_out, err = run_tool("search", ["--weights", tiny_onnx[0], "--index", index, "--query", query,
                                              "--top-k", "5", "--out", out], capsys)
    assert code == 0, err  # same fingerprint: the exported model may query the checkpoint's index
    rows = lambda text: [line.split() for line in text.splitlines() if line.strip()[:1].isdigit()]  # noqa: E731
    assert [os.path.abspath(r[5]) for r in rows(onnx_out)][:1] == [query]
    for a, b in zip(rows(stdout), rows(onnx_out)):
        assert float(a[1]) == pytest.approx(float(b[1]), abs=1e-4)
    camera = os.path.basename(query).split("_")[1]
    code, other, err = run_tool("search", ["--weights", tiny_onnx[0], "--index", index, "--query", query,
                                           "--top-k", "5", "--out", out, "--exclude-same-camera"], capsys)
    assert code == 0, err  # the main job's model, the VeRi protocol: no image of the query's camera
    assert len(rows(other)) == 5 and all(r[3] != camera and f"_{camera}_" not in r[5] for r in rows(other))
    csv_lines = open(os.path.join(out, "results.csv")).read().splitlines()
    assert csv_lines[0].startswith("query,rank,gallery,distance") and len(csv_lines) == 1 + 5
    assert Image.open(os.path.join(out, "ranked_list.png")).size[0] > 5 * 96


def _other_checkpoint(weights, path):
    ckpt = load_weights_file(weights)
    ckpt["model"]["heads.bottleneck.0.running_mean"] += 1.0
    torch.save(ckpt, path)
    return str(path)


def _unreadable(folder):
    folder.mkdir(exist_ok=True)
    (folder / "0001_c001_0_0.jpg").write_bytes(b"not a jpeg")
    return str(folder)


@pytest.mark.parametrize("case", ["missing gallery", "empty gallery", "unreadable image", "missing query",
                                  "another model", "checkpoint vs config", "no config", "onnx without metadata"])
def test_bad_input_is_one_line_and_exit_2(case, tiny_run, tmp_path, capsys):
    config, opts, weights, data = tiny_run
    index = str(tmp_path / "index")
    model = ["--config-file", config, "--weights", weights]
    query = list_images(os.path.join(data, "image_query"))[0]
    if case in ("unreadable image", "missing query", "another model"):  # these need an index to exist
        assert run_tool("search", model + ["--index", index, "--gallery", os.path.join(data, "image_query"), *opts],
                        capsys)[0] == 0
    before = sorted(os.listdir(index)) if os.path.isdir(index) else None
    argv, message = {
        "missing gallery": lambda: (model + ["--gallery", str(tmp_path / "nope")], "--gallery .*nope does not exist"),
        "empty gallery": lambda: (model + ["--gallery", str(tmp_path)], "--gallery folder .* holds no image"),
        "unreadable image": lambda: (model + ["--gallery", _unreadable(tmp_path / "bad")],
                                     "cannot read image .*0001_c001_0_0.jpg .*replace it or remove it"),
        "missing query": lambda: (model + ["--query", str(tmp_path / "q.jpg")], "--query .*q.jpg does not exist"),
        "another model": lambda: (["--config-file", config, "--weights",
                                   _other_checkpoint(weights, tmp_path / "other.pth"), "--query", query],
                                  "index .* was built by another model"),
        "checkpoint vs config": lambda: (["--config-file", os.path.join(ROOT, "configs/VeRi/val_r50.yml"), "--weights",
                                          weights, "--gallery", os.path.join(data, "image_query")],
                                         "checkpoint .*model_final.pth does not fit the model of .*val_r50.yml"),
        "no config": lambda: (["--weights", weights, "--gallery", os.path.join(data, "image_query")],
                              "--config-file is needed with the checkpoint"),
        "onnx without metadata": lambda: (["--weights", _bare_onnx(tmp_path / "bare.onnx"), "--gallery",
                                           os.path.join(data, "image_query")], "has no preprocessing metadata"),
    }[case]()
    extra = opts if "--config-file" in argv and "val_r50" not in " ".join(argv) else []
    code, _, err = run_tool("search", argv + ["--index", index, *extra], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err, err[-2000:]
    assert lines[-1].startswith("error: ") and re.search(message, lines[-1]), lines[-1]
    after = sorted(os.listdir(index)) if os.path.isdir(index) else None
    assert after == before  # nothing written


def _bare_onnx(path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    onnx.save(helper.make_model(graph), str(path))
    return str(path)


def test_query_before_any_index_exists(tmp_path):
    """A real process: one line, exit status 2, before any model is loaded."""
    query = tmp_path / "query.png"
    Image.new("RGB", (8, 8)).save(query)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools/search.py"), "--weights", "model.onnx",
                           "--index", str(tmp_path / "none"), "--query", str(query)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: no search index in {tmp_path / 'none'} (catalog.sqlite missing): build it first with "
        f"tools/search.py --gallery IMAGES --index {tmp_path / 'none'}")
