"""The labels study's preparation (fastreid_val/experiments/labels_worth.py): hand labels are the annotation
page's pick answered with the truth, the labeller's accuracy against the truth is what its labels say, and
each variant trains with the training viewpoints it names."""
import json
import os

from fastreid_val.annotate import pick_images
from fastreid_val.data.viewpoint_labels import read_viewpoint_file
from fastreid_val.experiments import labels_worth
from fastreid_val.labeller import LabellerSettings

from .conftest import TINY_OPTS


def test_hand_labels_are_the_pages_pick_with_the_truth(datasets_root, tmp_path):
    from fastreid_val.annotate.select import dataset_items

    folder = str(tmp_path / "labeller")
    summary = labels_worth.prepare_labels(folder, TINY_OPTS, n=40, settings=LabellerSettings(
        size=(32, 32), epochs=2, device="cpu"))
    items = dataset_items("SynthVeRi", TINY_OPTS)
    truth = {os.path.abspath(it[0]): it[3] for it in items}
    rows = [line.split(",") for line in open(os.path.join(folder, "hand_labels.csv")).read().splitlines()[1:]]
    assert [p for p, _ in rows] == [os.path.abspath(p) for p in pick_images(dataset="SynthVeRi", num=40, opts=TINY_OPTS)]
    assert all(int(v) == truth[p] for p, v in rows)
    labels = read_viewpoint_file(os.path.join(folder, "viewpoints.txt"))
    by_id = {os.path.basename(p)[:-4]: v for p, v in truth.items()}
    assert set(labels) == set(by_id) and summary["truth_images"] == len(items) == 24 * 8
    agree = sum(labels[i] == v for i, v in by_id.items())
    assert summary["truth_accuracy"] == agree / len(by_id) and sum(map(sum, summary["truth_confusion"])) == len(by_id)
    hand = {os.path.basename(p)[:-4] for p, _ in rows}
    unseen = [i for i in by_id if i not in hand]
    assert summary["unseen_images"] == 24 * 8 - 40
    assert summary["unseen_accuracy"] == sum(labels[i] == by_id[i] for i in unseen) / len(unseen)
    assert summary["hand_labels"] == 40 and summary["identities"] == 24  # every identity before a second image
    # a finished folder is reused, not labelled again
    stamp = os.path.getmtime(os.path.join(folder, "viewpoints.txt"))
    assert labels_worth.prepare_labels(folder, TINY_OPTS) == json.load(open(os.path.join(folder, "accuracy.json")))
    assert os.path.getmtime(os.path.join(folder, "viewpoints.txt")) == stamp


def test_each_variant_trains_with_its_viewpoints(tmp_path, monkeypatch):
    calls = {}
    monkeypatch.setattr(labels_worth, "run_config", lambda config, folder, seed, opts, **kw: calls.update(
        {os.path.basename(os.path.dirname(folder)): (config, seed, list(opts))}))
    (tmp_path / "labeller").mkdir()
    (tmp_path / "labeller" / "viewpoints.txt").write_text("")
    for name, _, _ in labels_worth.VARIANTS:
        labels_worth.run_variant(str(tmp_path), name, 2, ["SOLVER.MAX_EPOCH", "1"])
    setting = list(labels_worth.SETTING) + ["SOLVER.MAX_EPOCH", "1"]
    labels = str(tmp_path / "labeller" / "viewpoints.txt")
    assert calls["softmax_mnv2"] == ("configs/SynthVeRi/softmax_mnv2.yml", 2, setting)
    assert calls["val_mnv2-truth"] == ("configs/SynthVeRi/val_mnv2.yml", 2, setting)
    assert calls["val_mnv2-labeller"][2] == setting + ["DATASETS.VIEWPOINT.TRAIN_LABELS", labels]
    assert calls["val_lambda10_mnv2-none"] == ("configs/SynthVeRi/val_lambda10_mnv2.yml", 2,
                                               setting + ["DATASETS.VIEWPOINT.TRAIN_LABELS", "unknown"])
    assert len(calls) == 8
