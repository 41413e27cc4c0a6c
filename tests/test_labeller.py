"""tools/label_viewpoints.py: trains on hand labels, reports held-out accuracy, refuses below threshold."""
import os
import subprocess
import sys

import pytest

from fastreid_val.data.annotations import read_keypoint_file
from fastreid_val.data.synthveri import SynthSettings, generate
from fastreid_val.data.vehicleid import read_viewpoint_file
from fastreid_val.data.viewpoints import orientation_to_viewpoint

ROOT = os.path.join(os.path.dirname(__file__), "..")


@pytest.fixture(scope="module")
def hand_labels(tmp_path_factory):
    d = tmp_path_factory.mktemp("label")
    # The independent-ends images the accuracy thresholds below were set on (front and rear share no plate).
    generate(str(d / "synth"), SynthSettings(num_train_ids=30, num_test_ids=1, images_per_id=6, num_cameras=4,
                                             width=48, height=48, seed=11, shared_cues=False))
    labels = read_keypoint_file(str(d / "synth" / "keypoint_train.txt"))
    # Hand labels: every image of the first 24 identities, front or rear as a person would say
    # (obliques go with the end they show); the last 6 identities are never hand-labelled.
    rows = [(str(d / "synth" / "image_train" / n), orientation_to_viewpoint(l.orientation, 2, l.visible_front,
                                                                               l.visible_rear))
            for n, l in sorted(labels.items()) if int(n[:4]) <= 24]
    (d / "hand.csv").write_text("path,viewpoint\n" + "".join(f"{p},{v}\n" for p, v in rows))
    (d / "all.txt").write_text("".join(f"{d / 'synth' / 'image_train' / n}\n" for n in sorted(labels)))
    return d, len(labels)


def _run(d, *extra, output="viewpoints.txt"):
    # 16 epochs: the unseen identities' agreement is 0.78-0.83 over seeds 0-2 on an AVX-512 CPU; at 8 it was
    # 0.69-0.81, too close to the 0.7 below for the test to hold on every CPU's kernels.
    cmd = [sys.executable, os.path.join(ROOT, "tools/label_viewpoints.py"), "--labelled", str(d / "hand.csv"),
           "--images", str(d / "all.txt"), "--output", str(d / output), "--size", "48", "48",
           "--epochs", "16", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def test_refuses_below_threshold_and_writes_nothing(hand_labels):
    d, _ = hand_labels
    # no accuracy reaches 1.01: one epoch shows it; a file of its own (the module's other runs write theirs)
    proc = _run(d, "--min-accuracy", "1.01", "--epochs", "1", output="refused.txt")
    assert proc.returncode == 2 and "below --min-accuracy" in proc.stderr
    assert not list(d.glob("refused*"))


def test_labels_every_image_with_confidence(hand_labels):
    d, n = hand_labels
    proc = _run(d, "--min-accuracy", "0")
    assert proc.returncode == 0, proc.stderr[-2000:]
    acc = float(proc.stdout.split("held-out accuracy ")[1].split(";")[0])
    assert acc >= 0.7, acc  # on held-out hand labels; a classifier that learnt nothing is at 0.5
    # beside the labels, and named on the console: the held-out confusion matrix and the contact sheet
    confusion = (d / "viewpoints.confusion.csv").read_text().splitlines()
    assert confusion[0] == "hand label \\ labeller,front,rear" and [r.split(",")[0] for r in confusion[1:]] == ["front", "rear"]
    counts = [[int(c) for c in r.split(",")[1:]] for r in confusion[1:]]
    hand = [int(line.split(",")[1]) for line in (d / "hand.csv").read_text().splitlines()[1:]]
    assert [sum(r) for r in counts] == [round(0.2 * hand.count(v)) for v in (0, 1)]  # 20 % of each viewpoint held out
    assert (counts[0][0] + counts[1][1]) / sum(map(sum, counts)) == pytest.approx(acc, abs=1e-3)
    assert f"confusion matrix: {d / 'viewpoints.confusion.csv'}" in proc.stdout
    assert f"contact sheet (random and least confident images per viewpoint): {d / 'viewpoints.contact.png'}" in proc.stdout
    from PIL import Image

    sheet = Image.open(d / "viewpoints.contact.png")
    assert sheet.format == "PNG" and sheet.width >= 10 * 96 and sheet.height >= 4 * 96  # 2 rows per viewpoint
    lines = (d / "viewpoints.txt").read_text().splitlines()
    assert len(lines) == n
    assert all(len(l.split()) == 3 and 0.5 <= float(l.split()[2]) <= 1.0 for l in lines)
    labels = read_viewpoint_file(str(d / "viewpoints.txt"))
    assert set(labels.values()) <= {0, 1}
    # Images of the identities no hand label covers, against their front/rear truth from the
    # annotation; a classifier that learnt nothing agrees about half the time.
    hand = {os.path.splitext(os.path.basename(l.split(",")[0]))[0] for l in (d / "hand.csv").read_text().splitlines()[1:]}
    truth = read_keypoint_file(str(d / "synth" / "keypoint_train.txt"))
    unseen = {os.path.splitext(n)[0]: orientation_to_viewpoint(l.orientation, 2, l.visible_front, l.visible_rear)
              for n, l in truth.items() if os.path.splitext(n)[0] not in hand}
    assert len(unseen) == 6 * 6
    agree = sum(labels[name] == v for name, v in unseen.items())
    # A classifier that learnt nothing agrees on 18 of 36 on average, and on 24 or more with probability
    # 0.033 (binomial, p = 1/2). Seeded runs repeat only on the same CPU kernels: 25 of 36 on one
    # machine, more on another.
    assert agree >= 24, agree


def test_cannot_tell_rows_are_left_out_and_folders_are_lists(tmp_path):
    from fastreid_val.labeller import read_image_list, read_labelled_csv

    (tmp_path / "hand.csv").write_text("path,viewpoint\na.jpg,0\nb.jpg,-1\nc.jpg,1\n")
    assert read_labelled_csv(str(tmp_path / "hand.csv")) == [("a.jpg", 0), ("c.jpg", 1)]
    assert read_labelled_csv(str(tmp_path / "hand.csv"), keep_cannot_tell=True)[1] == ("b.jpg", -1)
    (tmp_path / "hand.csv").write_text("path,viewpoint\na.jpg,0\nb.jpg,-2\n")
    with pytest.raises(ValueError, match="hand.csv:3: viewpoint must be in 0..1 or -1 .cannot tell., got -2"):
        read_labelled_csv(str(tmp_path / "hand.csv"))
    for name in ("cam1/x.jpg", "cam2/y.PNG", "z.jpeg", "notes.txt"):
        (tmp_path / "imgs" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "imgs" / name).write_bytes(b"")
    assert read_image_list(str(tmp_path / "imgs")) == [str(tmp_path / "imgs" / n) for n in ("cam1/x.jpg", "cam2/y.PNG",
                                                                                            "z.jpeg")]


def test_bad_csv_is_refused(tmp_path):
    (tmp_path / "hand.csv").write_text("a.jpg,front\n")
    (tmp_path / "all.txt").write_text("a.jpg\n")
    proc = _run(tmp_path)
    assert proc.returncode == 2 and "hand.csv:1: viewpoint must be an integer" in proc.stderr


def test_missing_input_is_refused_before_training(tmp_path):
    (tmp_path / "all.txt").write_text("a.jpg\n")
    proc = _run(tmp_path)  # no hand.csv
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == f"error: hand labels file {tmp_path / 'hand.csv'} does not exist"
    assert "Traceback" not in proc.stderr and not (tmp_path / "viewpoints.txt").exists()


@pytest.mark.parametrize("case, message", [
    ("missing image", "1 images of the image list do not exist, e.g. "),
    ("output is a folder", "it is a folder"),
    ("not utf-8", "hand.csv: not a UTF-8 text file"),
])
def test_bad_inputs_are_refused_before_training(hand_labels, tmp_path, case, message):
    d, _ = hand_labels
    for name in ("hand.csv", "all.txt"):
        (tmp_path / name).write_bytes((d / name).read_bytes())
    if case == "missing image":
        with open(tmp_path / "all.txt", "a") as f:
            f.write(str(tmp_path / "gone.jpg") + "\n")
    elif case == "output is a folder":
        (tmp_path / "viewpoints.txt").mkdir()
    else:
        (tmp_path / "hand.csv").write_bytes(b"path,viewpoint\n\xff\xfe,0\n")
    proc = _run(tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert message in proc.stderr.strip().splitlines()[-1]
    assert "held-out accuracy" not in proc.stderr + proc.stdout  # refused before any training


def test_the_labeller_runs_on_the_configured_device(hand_labels, monkeypatch):
    import torch

    from fastreid_val import labeller

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert labeller.LabellerSettings(device="cuda:1").device == "cuda:1"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert labeller.LabellerSettings(device="cuda").device == "cpu"  # no CUDA here: the CPU
    # the model and every batch go to the settings' device (recorded: this machine has only the CPU)
    moved = []
    to = torch.Tensor.to
    monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **k: moved.append(str(a[0])) or to(self, *a, **k))
    d, _ = hand_labels
    rows = labeller.read_labelled_csv(str(d / "hand.csv"))[:12]
    s = labeller.LabellerSettings(size=(48, 48), epochs=1, device="cpu")
    model, held_out = labeller.train_labeller(rows, s)
    assert len(held_out.truth) == len(held_out.predicted) == len(held_out.paths) >= 2
    assert next(model.parameters()).device.type == "cpu" and moved and set(moved) == {"cpu"}
    labeller.label_images(model, [p for p, _ in rows], s, batch=4)
    assert moved.count("cpu") >= 3 + 3  # training batches and the 3 labelling batches
