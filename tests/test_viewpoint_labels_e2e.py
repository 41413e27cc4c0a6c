"""From nothing to a VAL training on VehicleID, as a user goes: hand labels given in the annotation page (in
a headless browser), every training image labelled by tools/label_viewpoints.py, and
configs/VehicleID/val_r50.yml trained a few iterations on those labels, on the tiny VehicleID tree.
Skipped, saying what to install, where no browser is installed."""
import os
import subprocess
import sys

from fastreid_val.data.build import load_dataset
from fastreid_val.data.viewpoint_labels import read_viewpoint_file
from fastreid_val.engine import build_config

from .browser import Page, browser_or_skip, chromium, start_annotation, stop
from .test_user_path import _run, user_env  # noqa: F401  (the fixture: datasets and ImageNet files)

ROOT = os.path.join(os.path.dirname(__file__), "..")


def test_annotate_label_train_on_vehicleid(user_env, tmp_path):  # noqa: F811
    browser_or_skip()
    root, _ = user_env
    base = os.path.join(root, "vehicleid")
    labels_file = os.path.join(base, "viewpoints.txt")
    os.replace(labels_file, tmp_path / "shipped_viewpoints.txt")  # a VehicleID without viewpoints, as published
    hand = str(tmp_path / "hand.csv")
    try:
        # 1. annotate: every one of the 32 training images, by what it shows (tests/trees.py: image k of an
        # identity has its dark band at the top, a front, for even k), one "cannot tell"
        proc, url, lines = start_annotation("--dataset", "VehicleIDViewpoint", "--output", hand, "--num", "32")
        assert lines[0].startswith("32 images of VehicleIDViewpoint to label, 0 done so far")
        try:
            with chromium() as driver:
                page = Page(driver, url)
                while (name := page.shown()) is not None:
                    k = int(name[:-4]) % 100
                    page.press("x" if name == "0000101.jpg" else "12"[k % 2])
                assert "All 32 images are done" in page.text("finished")
        finally:
            stop(proc)
        rows = [line.split(",") for line in open(hand).read().splitlines()[1:]]
        assert len(rows) == 32 and sum(v == "-1" for _, v in rows) == 1
        assert all(int(v) == int(os.path.basename(p)[:-4]) % 100 % 2 for p, v in rows if v != "-1")
        # 2. label every training image (few epochs: the pipeline is tested here, the labeller's accuracy in
        # tests/test_labeller.py)
        label = subprocess.run([sys.executable, os.path.join(ROOT, "tools/label_viewpoints.py"), "--labelled", hand,
                                "--images", os.path.join(base, "train_test_split", "train_list.txt"), "--image-root",
                                os.path.join(base, "image"), "--output", labels_file, "--size", "32", "32", "--epochs",
                                "3", "--min-accuracy", "0", "--device", "cpu"],
                               capture_output=True, text=True, timeout=600)
        assert label.returncode == 0, label.stderr[-3000:]
        assert f"labels written to {labels_file}" in label.stdout
        for side in ("viewpoints.confusion.csv", "viewpoints.contact.png"):
            assert os.path.getsize(os.path.join(base, side)) > 0 and side in label.stdout
        labels = read_viewpoint_file(labels_file)
        assert len(labels) == 32 and set(labels.values()) <= {0, 1}
        # 3. the VehicleID dataset reads them for every training image, and the paper's VehicleID config trains
        cfg = build_config(os.path.join(ROOT, "configs/VehicleID/val_r50.yml"))
        train = load_dataset(cfg, "VehicleIDViewpoint").train
        assert {os.path.basename(it[0])[:-4]: it[3] for it in train} == labels
        results = _run("configs/VehicleID/val_r50.yml", tmp_path / "run", "DATASETS.SPLITS.NUM", "1")
        assert os.path.isfile(tmp_path / "run" / "model_final.pth")
        assert all(0 <= m["mAP"] <= 100 for m in results.values())
        assert "have no viewpoint label" not in (tmp_path / "run" / "log.txt").read_text()
    finally:
        os.replace(tmp_path / "shipped_viewpoints.txt", labels_file)
