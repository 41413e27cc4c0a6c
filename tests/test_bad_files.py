"""The bad-input corpus (tests/data/bad_inputs/) against every tool that reads that kind of file: one line on
stderr, exit status 2, and nothing on disk changed. The tools run in this process (``run_tool``, the
training's ``cli``): a process per probe would import torch each time."""
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch
from PIL import Image

from fastreid_val.atomic import read_json, stale_temporaries, write_json
from fastreid_val.config import check_schedule
from fastreid_val.engine.launcher import build_config
from fastreid_val.errors import AnnotationError, InvalidConfigError, OutputFileError, UnsafeModelFileError
from fastreid_val.labeller import read_labelled_csv
from fastreid_val.weights_file import load_weights_file

from .conftest import TINY_OPTS, run_tool, train_in_process as train
from .trees import veri_tree

ROOT = os.path.join(os.path.dirname(__file__), "..")
CORPUS = os.path.join(os.path.dirname(__file__), "data", "bad_inputs")
CFG = os.path.join(ROOT, "configs/SynthVeRi/val_mnv2.yml")
pytestmark = pytest.mark.usefixtures("tool_logging")  # the tools' logging handlers go with each test


def corpus(name):
    return os.path.join(CORPUS, name)


def snapshot(folder):
    """{relative path: bytes} of every file under ``folder``: what "nothing on disk changed" compares."""
    out = {}
    for d, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(d, f)
            out[os.path.relpath(p, folder)] = open(p, "rb").read()
    return out


def one_error_line(code, err, pattern):
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err, err[-3000:]
    assert lines and lines[-1].startswith("error: ") and re.search(pattern, lines[-1]), lines[-1:]
    return lines[-1]


# Annotation files: VeRi-776's keypoint file with an infinite value, or not UTF-8.

@pytest.mark.parametrize("probe, message", [
    ("keypoint_inf.txt", r"keypoint_test.txt:17: keypoint coordinates and orientation must be finite numbers, "
                         r"got 'inf'"),
    ("keypoint_latin1.txt", r"keypoint_test.txt: not a UTF-8 text file \(invalid continuation byte at byte \d+\)"),
])
def test_a_bad_annotation_file_stops_training_and_the_annotator_in_one_line(probe, message, tmp_path, capsys):
    veri = veri_tree(str(tmp_path / "datasets"))
    with open(os.path.join(veri, "keypoint_test.txt"), "ab") as f:
        f.write(open(corpus(probe), "rb").read())
    before = snapshot(str(tmp_path / "datasets"))
    os.environ["FASTREID_DATASETS"] = str(tmp_path / "datasets")
    try:
        code, err = train(["--config-file", CFG, "DATASETS.NAMES", '("VeRiViewpoint",)', "DATASETS.TESTS",
                           '("VeRiViewpoint",)', "OUTPUT_DIR", str(tmp_path / "out")], capsys)
        one_error_line(code, err, message)
        assert not [f for f in os.listdir(tmp_path / "out") if f.endswith(".pth")]
        code, _, err = run_tool("annotate_viewpoints", ["--dataset", "VeRiViewpoint", "--output",
                                                        str(tmp_path / "hand.csv"), "--port", "0"], capsys)
        one_error_line(code, err, message)
        assert not os.path.exists(tmp_path / "hand.csv") and not os.path.exists(tmp_path / "hand.csv.lock")
    finally:
        os.environ.pop("FASTREID_DATASETS")
    assert snapshot(str(tmp_path / "datasets")) == before


def test_a_labels_file_with_an_infinite_confidence_is_refused(tmp_path):
    from fastreid_val.data.viewpoint_labels import read_viewpoint_file

    with pytest.raises(AnnotationError, match=r"viewpoints_inf.txt:2: the confidence must be a finite number, got 'inf'"):
        read_viewpoint_file(corpus("viewpoints_inf.txt"))


# Configs: not UTF-8, or a YAML document that is not a mapping of keys.

@pytest.mark.parametrize("probe, message", [
    ("config_latin1.yml", r"config_latin1.yml: not a UTF-8 text file \(invalid continuation byte at byte 30\)"),
    ("config_list.yml", r"config_list.yml: a config is a YAML mapping of keys \(MODEL:, SOLVER:, ...\)"),
])
def test_a_config_that_is_not_a_config_is_one_line_for_training_and_export(probe, message, tmp_path, capsys):
    code, err = train(["--config-file", corpus(probe), "OUTPUT_DIR", str(tmp_path / "out")], capsys)
    one_error_line(code, err, message)
    code, _, err = run_tool("export_onnx", ["--config-file", corpus(probe), "--weights", str(tmp_path / "m.pth"),
                                            "--output", str(tmp_path / "m.onnx")], capsys)
    one_error_line(code, err, message + "|m.pth does not exist")
    assert os.listdir(tmp_path) == []


# Hand-label CSVs: a field over the csv module's limit, a byte-order mark.

def test_a_hand_label_csv_with_a_huge_field_is_one_line_for_the_labeller_and_the_annotator(tmp_path, capsys):
    csv = tmp_path / "hand.csv"
    csv.write_text("path,viewpoint\n\"" + "x" * 200_000 + "\",0\n")
    before = csv.read_bytes()
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "imgs" / "car.jpg")
    for argv in (["label_viewpoints", ["--labelled", str(csv), "--images", str(tmp_path / "imgs"), "--output",
                                       str(tmp_path / "labels.txt")]],
                 ["annotate_viewpoints", ["--images", str(tmp_path / "imgs"), "--output", str(csv), "--port", "0"]]):
        code, _, err = run_tool(*argv, capsys)
        one_error_line(code, err, r"hand.csv:2: not a CSV line \(field larger than field limit")
    assert csv.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["hand.csv", "imgs"]


def test_a_hand_label_csv_saved_with_a_byte_order_mark_reads_as_without():
    assert read_labelled_csv(corpus("hand_labels_bom.csv")) == [("img0.jpg", 0), ("img1.jpg", 1)]


# Images: more pixels than Pillow's decompression-bomb limit, as a gallery image and as a query.

def test_an_image_past_the_pixel_limit_is_one_line_for_search_and_export(tiny_onnx, tiny_run, tmp_path, capsys):
    config, opts, weights, data = tiny_run
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    shutil.copy(corpus("bomb.png"), gallery / "0001_c001_0_0.png")
    message = (r"cannot read image .*0001_c001_0_0.png \(Image size \(900000000 pixels\) exceeds limit of \d+ pixels: a "
               r"decompression bomb, or an image too large to decode\): resize it or remove it")
    code, _, err = run_tool("search", ["--weights", tiny_onnx[0], "--gallery", str(gallery), "--index",
                                       str(tmp_path / "index")], capsys)
    one_error_line(code, err, message)
    assert not os.path.exists(tmp_path / "index") or not os.listdir(tmp_path / "index")
    index = str(tmp_path / "good")
    assert run_tool("search", ["--weights", tiny_onnx[0], "--gallery", os.path.join(data, "image_query"),
                               "--index", index], capsys)[0] == 0
    before = snapshot(index)
    code, _, err = run_tool("search", ["--weights", tiny_onnx[0], "--index", index, "--query",
                                       str(gallery / "0001_c001_0_0.png"), "--out", str(tmp_path / "res")], capsys)
    one_error_line(code, err, message)
    assert snapshot(index) == before and not os.path.exists(tmp_path / "res" / "results.csv")
    code, _, err = run_tool("export_onnx", ["--config-file", config, "--weights", weights, "--output",
                                            str(tmp_path / "m.onnx"), "--images", str(gallery), *opts], capsys)
    one_error_line(code, err, message)
    assert not os.path.exists(tmp_path / "m.onnx")


# ONNX files whose metadata is not what the export writes.

@pytest.mark.parametrize("field, value", [("preprocessing", "{not json"), ("preprocessing", '{"size": [0, 64]}'),
                                          ("preprocessing", '{"crop": null}'), ("embedding_dim", "many"),
                                          ("embedding_dim", "-3")])
def test_an_onnx_file_with_bad_metadata_is_one_line(field, value, tiny_onnx, tiny_run, tmp_path, capsys):
    import onnx

    model = onnx.load(tiny_onnx[0])
    for prop in model.metadata_props:
        if prop.key == field:
            prop.value = value
    path = str(tmp_path / "edited.onnx")
    onnx.save(model, path)
    code, _, err = run_tool("search", ["--weights", path, "--gallery", os.path.join(tiny_run[3], "image_query"),
                                       "--index", str(tmp_path / "index")], capsys)
    one_error_line(code, err, r"edited.onnx: its metadata \(preprocessing, embedding_dim\) is not what "
                              r"tools/export_onnx.py writes")
    assert not os.path.exists(tmp_path / "index") or not os.listdir(tmp_path / "index")


# Model files whose unpickling would call a function.

class _Payload:
    def __reduce__(self):
        return (os.system, ("true",))


def test_a_model_file_calling_os_system_is_refused_naming_it_and_never_pointing_at_the_unsafe_load(tmp_path, capsys):
    for legacy in (False, True):
        path = str(tmp_path / f"evil{int(legacy)}.pth")
        torch.save({"model": {}, "x": _Payload()}, path, _use_new_zipfile_serialization=not legacy)
        with pytest.raises(UnsafeModelFileError) as info:
            load_weights_file(path)
        assert "would import posix.system" in str(info.value) and "weights_only" not in str(info.value)
    Image.new("RGB", (8, 8)).save(tmp_path / "car.jpg")
    code, _, err = run_tool("search", ["--config-file", CFG, "--weights", path, "--gallery", str(tmp_path),
                                       "--index", str(tmp_path / "index")], capsys)
    line = one_error_line(code, err, r"evil1.pth was refused: loading it would import posix.system")
    assert "weights_only" not in line


# A schedule that cannot run: refused before training, naming the keys.

@pytest.mark.parametrize("opts, iters, message", [
    (["SOLVER.MAX_EPOCH", "1"], 50, r"SOLVER.MAX_EPOCH 1 leaves the cosine schedule no epoch: the warm-up "
                                    r"\(SOLVER.WARMUP_ITERS 50, 1 epoch\(s\) of 50 iterations\)"),
    (["SOLVER.WARMUP_ITERS", "1000"], 50, r"SOLVER.WARMUP_ITERS 1000 is longer than the run \(SOLVER.MAX_EPOCH 18 x 50"),
    (["SOLVER.DELAY_EPOCHS", "18"], None, r"SOLVER.DELAY_EPOCHS 18 is as long as the run"),
    (["SOLVER.CHECKPOINT_PERIOD", "0"], None, r"SOLVER.CHECKPOINT_PERIOD must be >= 1, got 0"),
    (["TEST.EVAL_PERIOD", "-1"], None, r"TEST.EVAL_PERIOD must be >= 1, got -1"),
    (["SOLVER.MAX_EPOCH", "0"], None, r"SOLVER.MAX_EPOCH must be >= 1, got 0"),
    (["SOLVER.WARMUP_ITERS", "-5"], None, r"SOLVER.WARMUP_ITERS and SOLVER.DELAY_EPOCHS must be >= 0"),
    ([], 0, r"SOLVER.IMS_PER_BATCH 64 is larger than the training set"),
])
def test_a_schedule_that_cannot_run_is_refused(opts, iters, message):
    cfg = build_config(CFG, opts)
    with pytest.raises(InvalidConfigError, match=message):
        check_schedule(cfg) if iters is None else (check_schedule(cfg), check_schedule(cfg, iters))
    check_schedule(build_config(CFG))  # the recipe itself runs: 18 epochs of 50 iterations, 50 of warm-up
    check_schedule(build_config(CFG), 50)


def test_a_smoke_test_of_one_epoch_stops_before_training_in_one_line(datasets_root, tmp_path, capsys):
    """The issue's probe at the tiny tree's scale: 3 iterations an epoch, a warm-up of 3 (one epoch), one epoch."""
    code, err = train(["--config-file", CFG, *TINY_OPTS, "SOLVER.WARMUP_ITERS", "3", "SOLVER.MAX_EPOCH", "1",
                       "DATALOADER.NUM_WORKERS", "0", "OUTPUT_DIR", str(tmp_path / "out")], capsys)
    one_error_line(code, err, r"SOLVER.MAX_EPOCH 1 leaves the cosine schedule no epoch: .* raise MAX_EPOCH to at "
                              r"least 2")
    assert not [f for f in os.listdir(tmp_path / "out") if f.endswith(".pth") or f == "results.json"]


# Files the project writes: whole or not at all, and read back only whole.

def test_a_results_file_cut_short_is_refused_by_compare_in_one_line(tmp_path, capsys):
    for probe in ("results_empty.json", "results_torn.json"):
        run = tmp_path / probe.split(".")[0]
        run.mkdir()
        shutil.copy(corpus(probe), run / "results.json")
        before = snapshot(str(run))
        code, _, err = run_tool("compare", ["--runs", str(run), "--out", str(tmp_path / "report")], capsys)
        one_error_line(code, err, r"results .*results.json is (empty|cut short or malformed)")
        assert snapshot(str(run)) == before
        with pytest.raises(OutputFileError):
            read_json(str(run / "results.json"))


_KILLED_WRITER = """
import sys, time
from fastreid_val.atomic import atomic_write

def half_then_wait(f):  # killed with half of the new content written
    f.write(b'{"metrics": ')
    f.flush()
    sys.stdout.write("writing\\n")
    sys.stdout.flush()
    time.sleep(60)

atomic_write(sys.argv[1], half_then_wait)
"""


def test_a_writer_killed_mid_write_leaves_the_old_file_and_the_next_write_clears_its_temporary(tmp_path):
    path = str(tmp_path / "results.json")
    write_json(path, {"metrics": {"mAP": 0.5}})
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, path], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "writing\n"
    proc.kill()
    proc.wait(timeout=30)
    proc.stdout.close()
    assert read_json(path) == {"metrics": {"mAP": 0.5}}  # the old file, whole
    left = stale_temporaries(str(tmp_path), "results.json")
    assert len(left) == 1 and f".tmp-{proc.pid}-" in left[0]  # what the kill left behind, recognised as stale
    write_json(path, {"metrics": {"mAP": 0.75}})
    assert read_json(path) == {"metrics": {"mAP": 0.75}} and os.listdir(tmp_path) == ["results.json"]


def test_a_failed_write_leaves_no_temporary_and_a_live_writers_temporary_is_kept(tmp_path):
    path = str(tmp_path / "demo.md")

    def fail(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        from fastreid_val.atomic import atomic_write
        atomic_write(path, fail)
    assert os.listdir(tmp_path) == []
    live = tmp_path / f".tmp-{os.getppid()}-abc123-demo.md"  # a writer that still runs (this test's parent)
    live.write_text("in progress")
    write_json(path, {})
    assert live.exists()


def test_a_torn_last_line_of_the_metrics_log_is_skipped(tmp_path):
    from fastreid_val.experiments.diagnostics import training_curve

    (tmp_path / "metrics.json").write_text('{"iteration": 1, "loss": 2.0}\n{"iteration": 2, "loss": 1.5}\n{"iter')
    its, vals = training_curve(str(tmp_path), "loss")
    assert its.tolist() == [1, 2] and vals.tolist() == [2.0, 1.5]
    (tmp_path / "metrics.json").write_text('{"iteration": 1, "loss": 2.0}\n{"iter\n{"iteration": 3, "loss": 1.5}\n')
    with pytest.raises(ValueError):  # a torn line in the middle is not a kill's: a defect, not skipped
        training_curve(str(tmp_path), "loss")


def test_the_label_store_follows_a_symlinked_output_and_its_lock(tmp_path):
    from fastreid_val.annotate.store import LabelStore
    from fastreid_val.errors import AnnotationLockedError

    real = tmp_path / "real.csv"
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    with LabelStore(str(link)) as store:
        store.answer(str(tmp_path / "a.jpg"), 0)
        assert link.is_symlink() and real.read_text() == f"path,viewpoint\n{tmp_path / 'a.jpg'},0\n"
        with pytest.raises(AnnotationLockedError):
            LabelStore(str(real))  # the same file under its own name: the same lock
    assert link.is_symlink() and sorted(os.listdir(tmp_path)) == ["link.csv", "real.csv"]

