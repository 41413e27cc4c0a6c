"""tools/search.py with a tiny exported model (an 8x8 input, one matrix, 16-d): a real process killed with
SIGKILL at several points of indexing loses no committed batch and the next run goes on; filters by camera
and time; deletions of images that left the gallery; each bad input one line, exit status 2, nothing on
disk changed."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from fastreid_val.deploy.backend import open_backend
from fastreid_val.deploy.embedder import OnnxEmbedder
from fastreid_val.deploy.faiss_backend import FaissBackend
from fastreid_val.deploy.images import list_images
from fastreid_val.deploy.metadata import name_metadata

from .conftest import run_tool

ROOT = os.path.join(os.path.dirname(__file__), "..")
SEARCH = os.path.join(ROOT, "tools", "search.py")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """An ONNX file with the export's metadata: images [N, 3, 8, 8] -> a fixed random projection, 16-d."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = np.random.default_rng(0).standard_normal((192, 16)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["images", "shape"], ["flat"]), helper.make_node("MatMul", ["flat", "w"], ["y"])],
        "tiny", [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 16])],
        [numpy_helper.from_array(np.array([-1, 192], np.int64), "shape"), numpy_helper.from_array(weight, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    prep = {"size": [8, 8], "crop": None, "interpolation": "bicubic", "channels": "RGB", "range": [0, 255],
            "layout": "NCHW", "dtype": "float32", "pixel_mean": [0, 0, 0], "pixel_std": [1, 1, 1],
            "normalised_by_model": True}
    for key, value in {"preprocessing": json.dumps(prep), "fingerprint": "tiny16", "embedding_dim": "16"}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    path = str(tmp_path_factory.mktemp("tiny_model") / "tiny.onnx")
    onnx.save(model, path)
    return path


def make_gallery(folder, n, cameras=6, seed=0):
    """``n`` 8x8 images named VeRi-style: identity i // 3, camera i % cameras, frame i."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i // 3:04d}_c{i % cameras + 1:03d}_{i:08d}_0.png")
    return str(folder)


def snapshot(folder):
    return {f: os.path.getmtime(os.path.join(folder, f)) for f in sorted(os.listdir(folder))} \
        if os.path.isdir(folder) else None


def test_killed_indexing_keeps_every_committed_batch_and_the_next_run_goes_on(tiny_model, tmp_path):
    gallery, index = make_gallery(tmp_path / "gallery", 1200), str(tmp_path / "index")
    cmd = [sys.executable, SEARCH, "--weights", tiny_model, "--index", index, "--gallery", gallery,
           "--commit-every", "10", "--kind", "hnsw"]
    embedder = OnnxEmbedder(tiny_model)
    live = 0
    # Killed after the first committed batch, after the 40th, after the last (in the FAISS build and write).
    for kill_now in (lambda seen, done, todo: seen == 1, lambda seen, done, todo: seen == 40,
                     lambda seen, done, todo: done == todo):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        seen, reported = 0, 0
        for line in proc.stdout:
            if line.startswith("committed "):
                reported, todo = (int(v) for v in line.split()[1].split("/"))
                seen += 1
                if kill_now(seen, reported, todo):
                    break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read()[-2000:]
        with open_backend(index) as b:  # loads: schema, checksums, FAISS file all checked
            rows = b.live()
            assert len(rows) >= live + reported  # every batch reported committed is there
            paths = sorted(rows, key=lambda p: rows[p]["pos"])
            stored = b.vectors([rows[p]["pos"] for p in paths])
            np.testing.assert_allclose(stored, embedder.embed(paths), atol=1e-6)  # vectors agree row for row
            assert all(rows[p]["camera"] == name_metadata(p).camera for p in paths)  # and so does the metadata
            live = len(rows)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = f"index {index}: 1200 images ({1200 - live} new, 0 changed, 0 removed; HNSW32,Flat, 16-d): "
    assert summary + "written" in proc.stdout or (live == 1200 and summary + "already up to date" in proc.stdout), \
        proc.stdout[-1000:]  # only what no killed run had committed was embedded
    with open_backend(index) as b:
        assert sorted(b.live()) == list_images(gallery) and b.n == 1200 and b.factory == "HNSW32,Flat"


def _query(tiny_model, index, query, capsys, *extra):
    code, out, err = run_tool("search", ["--weights", tiny_model, "--index", index, "--query", query, "--top-k", "8",
                                         "--out", os.path.join(os.path.dirname(index), "out"), *extra], capsys)
    assert code == 0, err
    return [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]


def test_filters_and_deletions_through_the_tool(tiny_model, tmp_path, capsys):
    gallery, index = make_gallery(tmp_path / "gallery", 120), str(tmp_path / "index")
    meta = tmp_path / "meta.csv"  # times: image i taken at 2026-01-01 00:00 + i minutes
    names = sorted(os.listdir(gallery))
    meta.write_text("path,camera,timestamp\n" + "".join(
        f"gallery/{n},c{int(n.split('_')[1][1:]):03d},{1767225600 + 60 * i}\n" for i, n in enumerate(names)))
    code, out, err = run_tool("search", ["--weights", tiny_model, "--index", index, "--gallery", gallery,
                                         "--metadata", str(meta)], capsys)
    assert code == 0 and "120 images (120 new, 0 changed, 0 removed; Flat, 16-d): written" in out, err
    query = os.path.join(gallery, names[7])  # camera c002
    rows = _query(tiny_model, index, query, capsys)
    assert rows[0][5].endswith(names[7]) and rows[0][3] == "c002"  # itself first, at distance 0
    rows = _query(tiny_model, index, query, capsys, "--exclude-same-camera")
    assert len(rows) == 8 and all(r[3] != "c002" for r in rows)
    rows = _query(tiny_model, index, query, capsys, "--query-camera", "c003", "--exclude-same-camera",
                  "--cameras", "c002,c003,c004")
    assert len(rows) == 8 and {r[3] for r in rows} <= {"c002", "c004"}
    rows = _query(tiny_model, index, query, capsys, "--since", "2026-01-01T00:30:00Z", "--until", "1767227700")
    times = sorted(r[4] for r in rows)  # images 30..35 only: 6 pass, 6 returned
    assert times == [f"2026-01-01T00:{m}:00Z" for m in range(30, 36)]

    for n in names[:40]:  # a third of the gallery leaves: deleted, then compacted (past a quarter)
        os.remove(os.path.join(gallery, n))
    meta.write_text("path,camera,timestamp\n")
    code, out, err = run_tool("search", ["--weights", tiny_model, "--index", index, "--gallery", gallery], capsys)
    assert code == 0 and "80 images (0 new, 0 changed, 40 removed; Flat, 16-d): written" in out, err
    with open_backend(index) as b:
        assert b.n == 80 and sorted(b.live()) == list_images(gallery) and b.live()[list_images(gallery)[0]][
            "timestamp"] is None  # metadata follows the new source: names only
    rows = _query(tiny_model, index, os.path.join(tmp_path, "gallery", names[50]), capsys, "--top-k", "200")
    assert len(rows) == 80


BAD = {
    "unknown camera": (["--query", "Q", "--cameras", "c001,c099"], r"--cameras: unknown camera c099; the index holds "
                                                                   r"c001, c002, c003, c004, c005, c006"),
    "a time that does not parse": (["--query", "Q", "--since", "yesterday"], r"--since: timestamp 'yesterday' does "
                                                                             r"not parse: give ISO-8601"),
    "--since after --until": (["--query", "Q", "--since", "200", "--until", "100"], r"--since is after --until"),
    "a CSV time that does not parse": (["--gallery", "G", "--metadata", "CSV:g/0000_c001_00000000_0.png,c1,noon"],
                                       r"meta.csv:1: timestamp 'noon' does not parse"),
    "a CSV row not in the gallery": (["--gallery", "G", "--metadata", "CSV:g/0000_c001_00000000_0.png,c1,1\nx.png,c1,1"],
                                     r"meta.csv:2: x.png is not an image of the gallery"),
    "the query's camera unknown": (["--query", "PLAIN", "--exclude-same-camera"],
                                   r"the camera of query .*plain.png is unknown .*give it with --query-camera"),
    "a second writer": (["--gallery", "G"], r"index .* is being written by another indexing run \(process \d+\)"),
    "a tampered catalog": (["--query", "Q"], r"search index file .*catalog.sqlite cannot be read \(row 3 \(.*\) does "
                                             r"not match its checksum"),
    "the earlier format": (["--query", "Q"], r"was written by an earlier version \(index.json, no metadata\): index "
                                             r"the gallery again with --rebuild"),
    "an unknown index kind": (["--gallery", "G", "--rebuild", "--kind", "HNSW,Nope"],
                              r"--kind 'HNSW,Nope' is not a FAISS index_factory string"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_exit_2_and_changes_nothing(case, tiny_model, tmp_path, capsys):
    gallery = make_gallery(tmp_path / "g", 30)
    index = str(tmp_path / "index")
    if case == "the earlier format":
        os.makedirs(index)
        open(os.path.join(index, "index.json"), "w").write("{}")
    else:
        assert run_tool("search", ["--weights", tiny_model, "--index", index, "--gallery", gallery], capsys)[0] == 0
    if case == "a tampered catalog":
        import sqlite3
        db = sqlite3.connect(os.path.join(index, "catalog.sqlite"))
        db.execute("UPDATE images SET camera = 'c001' WHERE pos = 3")
        db.commit()
        db.close()
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    argv, message = BAD[case]
    argv = [{"Q": os.path.join(gallery, "0000_c001_00000000_0.png"), "G": gallery,
             "PLAIN": str(tmp_path / "plain.png")}.get(a, a) for a in argv]
    for i, a in enumerate(argv):
        if a.startswith("CSV:"):
            (tmp_path / "meta.csv").write_text(a[4:].replace("\\n", "\n") + "\n")
            argv[i] = str(tmp_path / "meta.csv")
    before = snapshot(index)
    holder = FaissBackend.open(index, writer=True, model=OnnxEmbedder(tiny_model).identity()) \
        if case == "a second writer" else None  # it writes its process id into writer.lock: not compared below
    try:
        code, _, err = run_tool("search", ["--weights", tiny_model, "--index", index, *argv], capsys)
    finally:
        if holder is not None:
            holder.close()
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err and len(lines) == 1, err[-2000:]
    assert lines[0].startswith("error: ") and __import__("re").search(message, lines[0]), lines[0]
    after = snapshot(index)
    if holder is not None:
        before.pop("writer.lock"), after.pop("writer.lock")
    assert after == before  # nothing on disk changed
