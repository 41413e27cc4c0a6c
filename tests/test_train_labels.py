"""DATASETS.VIEWPOINT.TRAIN_LABELS: a labels file replaces the training viewpoints, "unknown" drops them,
and a file that does not fit stops with one line."""
import os
import subprocess
import sys

import pytest

from fastreid_val.data.build import build_viewpoint_train_loader
from fastreid_val.data.viewpoint_labels import image_id
from fastreid_val.engine import build_config
from fastreid_val.errors import AnnotationError, InvalidConfigError, MissingFileError

from .trees import veri_tree

ROOT = os.path.join(os.path.dirname(__file__), "..")


@pytest.fixture
def veri(tmp_path, monkeypatch):
    """The tiny VeRi tree (8 training identities x 4 images, truth front/rear by k: 0, 1, 0, 1)."""
    veri_tree(str(tmp_path))
    monkeypatch.setenv("FASTREID_DATASETS", str(tmp_path))
    return tmp_path / "veri"


def _cfg(*opts):
    return build_config("", ["DATASETS.NAMES", '("VeRiViewpoint",)', "DATASETS.TESTS", '("VeRiViewpoint",)',
                             "INPUT.SIZE_TRAIN", "[16, 16]", "INPUT.SIZE_TEST", "[16, 16]", "SOLVER.IMS_PER_BATCH", "32",
                             "DATALOADER.NUM_WORKERS", "0", "MODEL.DEVICE", "cpu", "INPUT.FLIP.ENABLED", "False", *opts])


def _seen(cfg):
    """{imgid: viewpoint} of every image in the first training batch (all 32 training images: 8 identities
    of 4, NUM_INSTANCE 4)."""
    batch = next(iter(build_viewpoint_train_loader(cfg)))
    return {image_id(p): v for p, v in zip(batch["img_paths"], batch["viewpoints"].tolist())}


def _truth(veri):
    # tests/trees.py: image k of an identity has orientation (0, 1, 6, 7)[k % 4]: front, rear, front, rear
    return {n[:-4]: int(n.split("_")[2]) % 2 for n in os.listdir(veri / "image_train")}


def test_a_labels_file_replaces_the_training_viewpoints(veri, tmp_path):
    truth = _truth(veri)
    assert _seen(_cfg()) == truth  # without the key: the dataset's own annotation
    names = sorted(truth)
    # the labeller's format, every label the opposite of the truth, and two images left out
    (tmp_path / "labels.txt").write_text("".join(f"{n} {1 - truth[n]} 0.9{i}\n" for i, n in enumerate(names[2:])))
    seen = _seen(_cfg("DATASETS.VIEWPOINT.TRAIN_LABELS", str(tmp_path / "labels.txt")))
    assert seen == {n: (-1 if n in names[:2] else 1 - truth[n]) for n in names}


def test_unknown_drops_every_training_viewpoint(veri):
    seen = _seen(_cfg("DATASETS.VIEWPOINT.TRAIN_LABELS", "unknown"))
    assert len(seen) == 32 and set(seen.values()) == {-1}


@pytest.mark.parametrize("content, error, message", [
    (None, MissingFileError, "DATASETS.VIEWPOINT.TRAIN_LABELS .*labels.txt does not exist"),
    ("0001_c001_00000000_0 0\n9999_c001_00000000_0 1\n", AnnotationError,
     "1 of its 2 image ids are not training images of DATASETS.NAMES, e.g. '9999_c001_00000000_0'"),
    ("0001_c001_00000000_0 2 0.8\n", AnnotationError, r"labels.txt:1: viewpoint must be 0 \(front\) or 1 \(rear\), got 2"),
    ("0001_c001_00000000_0 front\n", AnnotationError, "labels.txt:1: viewpoint must be an integer"),
])
def test_a_labels_file_that_does_not_fit_is_refused(veri, tmp_path, content, error, message):
    if content is not None:
        (tmp_path / "labels.txt").write_text(content)
    with pytest.raises(error, match=message):
        build_viewpoint_train_loader(_cfg("DATASETS.VIEWPOINT.TRAIN_LABELS", str(tmp_path / "labels.txt")))


def test_v4_labels_and_v1_refusal(veri, tmp_path):
    (tmp_path / "labels.txt").write_text("0001_c001_00000000_0 3\n")
    seen = _seen(_cfg("MODEL.VAL.NUM_VIEWPOINTS", "4", "DATASETS.VIEWPOINT.TRAIN_LABELS", str(tmp_path / "labels.txt")))
    assert seen["0001_c001_00000000_0"] == 3 and sum(v == -1 for v in seen.values()) == 31
    with pytest.raises(InvalidConfigError, match="MODEL.VAL.NUM_VIEWPOINTS is 1"):
        build_viewpoint_train_loader(_cfg("MODEL.VAL.NUM_VIEWPOINTS", "1", "DATASETS.VIEWPOINT.TRAIN_LABELS",
                                          str(tmp_path / "labels.txt")))


def test_the_training_command_says_it_in_one_line(veri, tmp_path):
    env = dict(os.environ, FASTREID_DATASETS=str(tmp_path))
    cmd = [sys.executable, os.path.join(ROOT, "tools/train_net.py"), "--config-file",
           os.path.join(ROOT, "configs/VeRi/val_r50.yml"), "MODEL.BACKBONE.PRETRAIN", "False",
           "DATASETS.VIEWPOINT.TRAIN_LABELS", str(tmp_path / "gone.txt"), "OUTPUT_DIR", str(tmp_path / "out")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f"error: DATASETS.VIEWPOINT.TRAIN_LABELS {tmp_path / 'gone.txt'} does not exist")
