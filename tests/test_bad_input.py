"""Bad inputs through the command line: one line on stderr, exit status 2, nothing lost. A missing config
file runs tools/train_net.py as a user does, in a process of its own; the other probes run its ``cli`` in
this process (a process per probe would import torch each time)."""
import os
import re
import subprocess
import sys

import pytest

from .conftest import train_in_process

ROOT = os.path.join(os.path.dirname(__file__), "..")
CFG = os.path.join(ROOT, "configs/SynthVeRi/val_mnv2.yml")
pytestmark = pytest.mark.usefixtures("tool_logging")  # the training's logging handlers go with each test


def _train(tmp_path, monkeypatch, capsys, *opts, config=CFG):
    """tools/train_net.py in this process: (exit status, stderr)."""
    monkeypatch.setenv("FASTREID_DATASETS", str(tmp_path / "datasets"))
    return train_in_process(["--config-file", config, *opts], capsys)


def _one_line(code, err, pattern):
    assert code == 2 and "Traceback" not in err, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert re.search(pattern, last), last


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
def test_bad_input_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, opts, message):
    _one_line(*_train(tmp_path, monkeypatch, capsys, *opts, "OUTPUT_DIR", str(tmp_path / "out")), message)


def test_missing_config_file(tmp_path, monkeypatch, capsys):
    # as a user runs it, in a process of its own: the script's exit status and stderr
    env = dict(os.environ, FASTREID_DATASETS=str(tmp_path / "datasets"))
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools/train_net.py"), "--config-file",
                           str(tmp_path / "nope.yml")], capture_output=True, text=True, env=env, timeout=300)
    _one_line(proc.returncode, proc.stderr, "does not exist|No such file")
    code, err = _train(tmp_path, monkeypatch, capsys, config=_with_missing_base(tmp_path))
    _one_line(code, err, "does not exist|No such file")


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


def test_output_dir_not_writable(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, err = _train(tmp_path, monkeypatch, capsys, "OUTPUT_DIR", str(blocker / "out"))
    assert code == 2
    assert f"error: OUTPUT_DIR {blocker / 'out'} is not writable" in err.strip().splitlines()[-1]
    assert blocker.read_text() == "not a folder"


def test_empty_dataset_folder(tmp_path, monkeypatch, capsys):
    for d in ("image_train", "image_query", "image_test"):
        os.makedirs(tmp_path / "datasets" / "veri" / d)
    code, err = _train(tmp_path, monkeypatch, capsys, "DATASETS.NAMES", '("VeRiViewpoint",)',
                       "OUTPUT_DIR", str(tmp_path / "out"))
    assert code == 2
    assert "keypoint_train.txt not found" in err or "no *.jpg images" in err
    code, err = _train(tmp_path, monkeypatch, capsys, "DATASETS.NAMES", '("VeRiViewpoint",)',
                       "DATASETS.VIEWPOINT.MISSING_ANNOTATION", "unknown", "OUTPUT_DIR", str(tmp_path / "out"))
    assert code == 2 and "no *.jpg images in" in err.strip().splitlines()[-1]
