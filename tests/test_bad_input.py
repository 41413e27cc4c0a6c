"""Bad inputs through the command line: one line on stderr, exit status 2, nothing lost."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..")
CFG = os.path.join(ROOT, "configs/SynthVeRi/val_mnv2.yml")


def _train(tmp_path, *opts, env_root=None):
    env = dict(os.environ, FASTREID_DATASETS=str(env_root or tmp_path / "datasets"))
    cmd = [sys.executable, os.path.join(ROOT, "tools/train_net.py"), "--config-file", CFG, *opts]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("opts, message", [
    (["MODEL.VAL.NOPE", "1"], "error: command line: Non-existent key: MODEL.VAL.NOPE"),
    (["MODEL.VAL.NUM_VIEWPOINTS", "0"], "error: MODEL.VAL.NUM_VIEWPOINTS must be >= 1"),
    (["MODEL.VAL.REUNION_WEIGHT", "-0.5"], "error: MODEL.VAL.REUNION_WEIGHT"),
    (["DATASETS.NAMES", '("VeRiViewpoint",)'], "error: VeRiViewpoint: .*veri not found. Expected layout"),
    (["DATASETS.NAMES", '("NoSuchSet",)'], "error: no dataset 'NoSuchSet' is registered .*SynthVeRi"),
    (["MODEL.BACKBONE.PRETRAIN", "True", "MODEL.BACKBONE.PRETRAIN_PATH", "/nonexistent/r50.pth"],
     "error: MODEL.BACKBONE.PRETRAIN_PATH /nonexistent/r50.pth does not exist"),
    (["MODEL.HEADS.NECK_FEAT", "middle"], "error: MODEL.HEADS.NECK_FEAT"),
    (["MODEL.BACKBONE.NAME", "build_osnet_backbone", "MODEL.BACKBONE.PRETRAIN_PATH", ""],
     "error: MODEL.BACKBONE.PRETRAIN is True but MODEL.BACKBONE.PRETRAIN_PATH is empty"),
    (["MODEL.HEADS.CLS_LAYER", "CircleSoftmax", "MODEL.HEADS.SCALE", "64", "MODEL.HEADS.MARGIN", "0.35"],
     "error: IdentityViewpointHead .* would ignore MODEL.HEADS.CLS_LAYER 'CircleSoftmax'"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, opts, message):
    import re

    proc = _train(tmp_path, *opts, "OUTPUT_DIR", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert re.search(message, last), last
    assert "Traceback" not in proc.stderr


def test_missing_config_file(tmp_path):
    env = dict(os.environ, FASTREID_DATASETS=str(tmp_path / "datasets"))
    for config in (str(tmp_path / "nope.yml"), _with_missing_base(tmp_path)):
        proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools/train_net.py"), "--config-file", config],
                              capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert "does not exist" in proc.stderr.strip().splitlines()[-1] or \
            "No such file" in proc.stderr.strip().splitlines()[-1]


def test_a_url_base_is_read_as_a_local_path(tmp_path):
    # FastReID 1.4.0 registers no URL handler: docs/RELIABILITY.md says an http(s) _BASE_ stops here, fetching nothing
    from fastreid_val.engine import build_config
    from fastreid_val.errors import MissingFileError

    child = tmp_path / "child.yml"
    child.write_text('_BASE_: "https://example.invalid/Base-VAL.yml"\n')
    with pytest.raises(MissingFileError, match=r"No such file or directory: https://example.invalid/Base-VAL.yml"):
        build_config(str(child))


def _with_missing_base(tmp_path):
    child = tmp_path / "child.yml"
    child.write_text('_BASE_: "missing-base.yml"\n')
    return str(child)


def test_output_dir_not_writable(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = _train(tmp_path, "OUTPUT_DIR", str(blocker / "out"))
    assert proc.returncode == 2
    assert f"error: OUTPUT_DIR {blocker / 'out'} is not writable" in proc.stderr.strip().splitlines()[-1]
    assert blocker.read_text() == "not a folder"


def test_empty_dataset_folder(tmp_path):
    for d in ("image_train", "image_query", "image_test"):
        os.makedirs(tmp_path / "datasets" / "veri" / d)
    proc = _train(tmp_path, "DATASETS.NAMES", '("VeRiViewpoint",)', "OUTPUT_DIR", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "keypoint_train.txt not found" in proc.stderr or "no *.jpg images" in proc.stderr
    proc = _train(tmp_path, "DATASETS.NAMES", '("VeRiViewpoint",)', "DATASETS.VIEWPOINT.MISSING_ANNOTATION", "unknown",
                  "OUTPUT_DIR", str(tmp_path / "out"))
    assert proc.returncode == 2 and "no *.jpg images in" in proc.stderr.strip().splitlines()[-1]
