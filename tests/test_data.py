"""Viewpoint labels from the real VeRi annotation format, through the loaders, and every bad input."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from fastreid_val.data.annotations import AnnotationError, read_keypoint_file
from fastreid_val.data.bases import DatasetNotFoundError
from fastreid_val.data.build import build_viewpoint_train_loader, flip_settings, load_dataset
from fastreid_val.data.common import ViewpointCommDataset
from fastreid_val.data.vehicleid import split_query_gallery
from fastreid_val.data.viewpoints import ORIENTATION_FLIP, orientation_to_viewpoint, viewpoint_flip_map
from fastreid_val.engine import build_config


def _fields(line):
    f = line.split()
    coords = [int(x) for x in f[1:41]]
    vis = lambda kps: sum(1 for k in kps if (coords[2 * k - 2], coords[2 * k - 1]) != (-1, -1))  # noqa: E731
    return os.path.basename(f[0]), int(f[41]), vis(range(5, 11)), vis(range(17, 21))


def test_real_lines_map_to_front_and_rear(fixture_lines, tmp_path):
    path = tmp_path / "keypoint_test.txt"
    path.write_text("".join(fixture_lines))
    labels = read_keypoint_file(str(path))
    assert len(labels) == len({_fields(l)[0] for l in fixture_lines})
    sides = {"front": 0, "rear": 0}
    for line in fixture_lines:
        name, o, nf, nr = _fields(line)
        v = orientation_to_viewpoint(labels[name].orientation, 2, labels[name].visible_front, labels[name].visible_rear)
        if o in (0, 3, 6):
            assert v == 0
        elif o in (1, 4, 7):
            assert v == 1
        else:  # pure sides follow the visible keypoints, ties to front
            assert v == (0 if nf >= nr else 1)
            sides["front" if v == 0 else "rear"] += 1
        assert orientation_to_viewpoint(o, 8) == o and orientation_to_viewpoint(o, 1) == 0
    assert sum(sides.values()) == 48  # every pure side line of the sample is in the excerpt: 9 left + 39 right
    assert sides["front"] and sides["rear"]  # both keypoint rules are exercised


def test_first_real_lines(fixture_lines):
    # 0002_c003_00084325_0.jpg: rear (1), rear lamps 17-20 visible, no front keypoint.
    name, o, nf, nr = _fields(fixture_lines[0])
    assert (name, o, nf, nr) == ("0002_c003_00084325_0.jpg", 1, 0, 4)
    # 0002_c006_00083490_0.jpg: front (0), fog lamps, headlights and logo visible.
    assert _fields(fixture_lines[1])[1:] == (0, 5, 0)


@pytest.mark.parametrize("v", [1, 2, 4, 8])
def test_flip_consistency(v):
    flip = viewpoint_flip_map(v)
    for o in range(8):
        for nf, nr in ((3, 0), (0, 3), (1, 1)):
            a = orientation_to_viewpoint(o, v, nf, nr)
            b = orientation_to_viewpoint(ORIENTATION_FLIP[o], v, nf, nr)
            assert flip[a] == b  # the flipped image's label is the label of the mirrored orientation
    assert (flip == list(range(v))) == (v != 8)


def _veri_tree(root, lines, with_annotation=True):
    veri = os.path.join(root, "veri")
    for d in ("image_train", "image_query", "image_test"):
        os.makedirs(os.path.join(veri, d), exist_ok=True)
    names = []
    for i, line in enumerate(lines):
        name = os.path.basename(line.split()[0])
        if name in names:
            continue
        names.append(name)
        folder = "image_train" if int(name[:4]) % 2 == 0 else "image_test"
        Image.new("RGB", (16, 16), (i % 255, 0, 0)).save(os.path.join(veri, folder, name))
        if folder == "image_test" and name.split("_")[1] == "c003":
            Image.new("RGB", (16, 16)).save(os.path.join(veri, "image_query", name))
    if with_annotation:
        train = [l.replace("image_test", "image_train") for l in lines if int(os.path.basename(l.split()[0])[:4]) % 2 == 0]
        open(os.path.join(veri, "keypoint_train.txt"), "w").writelines(train)
        open(os.path.join(veri, "keypoint_test.txt"), "w").writelines(lines)
    return veri


@pytest.fixture
def veri_root(tmp_path, fixture_lines, monkeypatch):
    _veri_tree(str(tmp_path), fixture_lines)
    monkeypatch.setenv("FASTREID_DATASETS", str(tmp_path))
    return str(tmp_path)


def _cfg(*opts):
    cfg = build_config("", ["DATASETS.NAMES", '("VeRiViewpoint",)', "DATASETS.TESTS", '("VeRiViewpoint",)',
                            "INPUT.SIZE_TRAIN", "[16, 16]", "INPUT.SIZE_TEST", "[16, 16]", "SOLVER.IMS_PER_BATCH", "16",
                            "DATALOADER.SAMPLER_TRAIN", "NaiveIdentitySampler", "DATALOADER.NUM_WORKERS", "0",
                            "MODEL.DEVICE", "cpu", *opts])
    return cfg


@pytest.mark.parametrize("in_memory, dataset", [("on", "InMemoryViewpointDataset"), ("off", "ViewpointCommDataset")])
def test_batch_carries_viewpoint_of_each_image(veri_root, fixture_lines, in_memory, dataset):
    labels = {}
    for line in fixture_lines:
        name, o, nf, nr = _fields(line)
        labels[name] = orientation_to_viewpoint(o, 2, nf, nr)
    loader = build_viewpoint_train_loader(_cfg("INPUT.FLIP.ENABLED", "True", "INPUT.CJ.ENABLED", "True",
                                               "DATALOADER.IN_MEMORY", in_memory))
    batch = next(iter(loader))
    assert type(loader.dataset).__name__ == dataset
    assert batch["images"].dtype == torch.float32 and batch["images"].shape == (16, 3, 16, 16)
    assert 0 <= batch["images"].min() and 1 < batch["images"].max() <= 255  # FastReID's ToTensor: 0..255
    assert batch["viewpoints"].dtype == torch.int64
    for path, v in zip(batch["img_paths"], batch["viewpoints"].tolist()):
        assert v == labels[os.path.basename(path)]
    # identity sampler: NUM_INSTANCE images per identity, whatever their viewpoints
    counts = np.unique(batch["targets"].numpy(), return_counts=True)[1]
    assert set(counts.tolist()) == {4}


def test_v8_label_flips_with_image(tmp_path):
    img = tmp_path / "0001_c001_00000001_0.jpg"
    arr = np.zeros((8, 8, 3), np.uint8)
    arr[:, :4] = 255
    Image.fromarray(arr).save(img)
    ds = ViewpointCommDataset([(str(img), 1, 0, 3)], None, relabel=False, flip_prob=1.0, flip_map=viewpoint_flip_map(8))
    item = ds[0]
    assert item["viewpoints"] == 6  # left-front -> right-front
    assert np.asarray(item["images"])[:, -1].mean() > 200  # and the image is mirrored


def test_v8_with_flip_but_no_label_flipping_is_refused(veri_root):
    cfg = _cfg("MODEL.VAL.NUM_VIEWPOINTS", "8", "INPUT.FLIP.ENABLED", "True", "DATASETS.VIEWPOINT.FLIP_LABELS", "False")
    ds = load_dataset(cfg, "VeRiViewpoint")
    with pytest.raises(ValueError, match="tells left from right"):
        flip_settings(cfg, [ds])
    cfg2 = _cfg("MODEL.VAL.NUM_VIEWPOINTS", "2", "INPUT.FLIP.ENABLED", "True")
    assert flip_settings(cfg2, [load_dataset(cfg2, "VeRiViewpoint")])[1] == [0, 1]


def test_missing_dataset_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTREID_DATASETS", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match="veri.*not found. Expected layout.*FASTREID_DATASETS"):
        load_dataset(_cfg(), "VeRiViewpoint")


def test_missing_annotation_error_and_switch(tmp_path, fixture_lines, monkeypatch):
    _veri_tree(str(tmp_path), fixture_lines[:200], with_annotation=False)
    monkeypatch.setenv("FASTREID_DATASETS", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match="keypoint_train.txt not found"):
        load_dataset(_cfg(), "VeRiViewpoint")
    ds = load_dataset(_cfg("DATASETS.VIEWPOINT.MISSING_ANNOTATION", "unknown"), "VeRiViewpoint")
    assert {it[3] for it in ds.train} == {-1}


@pytest.mark.parametrize("bad, message", [
    ("VeRi/image_test/0002_c003_1_0.jpg 1 2 3\n", r"keypoint_test.txt:2: expected 42 fields"),
    ("VeRi/image_test/0002_c003_1_0.jpg " + "-1 " * 40 + "9\n", r"keypoint_test.txt:2: orientation must be in 0..7"),
    ("VeRi/image_test/0002_c003_1_0.jpg " + "x " * 40 + "1\n", r"keypoint_test.txt:2: .*numbers"),
])
def test_malformed_annotation_names_file_and_line(tmp_path, fixture_lines, bad, message):
    path = tmp_path / "keypoint_test.txt"
    path.write_text(fixture_lines[0] + bad)
    with pytest.raises(AnnotationError, match=message):
        read_keypoint_file(str(path))


def test_viewpoint_label_outside_v_is_refused(veri_root):
    with pytest.raises(ValueError, match="NUM_VIEWPOINTS=3 cannot be derived"):
        load_dataset(_cfg("MODEL.VAL.NUM_VIEWPOINTS", "3"), "VeRiViewpoint")


def test_unreadable_image_names_the_file(tmp_path):
    bad = tmp_path / "0001_c001_00000001_0.jpg"
    bad.write_bytes(b"not a jpeg")
    ds = ViewpointCommDataset([(str(bad), 1, 0, 0)], None, relabel=False)
    with pytest.raises(OSError, match="cannot read image .*0001_c001_00000001_0.jpg"):
        ds[0]


def _vehicleid_tree(root, n_ids=6, per_id=3, labels=True):
    base = os.path.join(root, "vehicleid")
    os.makedirs(os.path.join(base, "image"))
    os.makedirs(os.path.join(base, "train_test_split"))
    lines = []
    for vid in range(n_ids):
        for k in range(per_id):
            imgid = f"{vid * 10 + k:07d}"
            Image.new("RGB", (8, 8), (vid * 40 % 256, k * 90, (vid * k * 30) % 256)).save(
                os.path.join(base, "image", imgid + ".jpg"))
            lines.append(f"{imgid} {vid}\n")
    for name in ("train_list.txt", "test_list_800.txt", "test_list_1600.txt", "test_list_2400.txt",
                 "test_list_13164.txt"):
        open(os.path.join(base, "train_test_split", name), "w").writelines(lines)
    if labels:
        open(os.path.join(base, "viewpoints.txt"), "w").writelines(
            f"{l.split()[0]} {i % 2} 0.9\n" for i, l in enumerate(lines))
    return base


def test_vehicleid_labels_and_seeded_split(tmp_path, monkeypatch):
    _vehicleid_tree(str(tmp_path))
    monkeypatch.setenv("FASTREID_DATASETS", str(tmp_path))
    a = load_dataset(_cfg("DATASETS.SPLITS.SEED", "1"), "SmallVehicleIDViewpoint")
    b = load_dataset(_cfg("DATASETS.SPLITS.SEED", "1"), "SmallVehicleIDViewpoint")
    c = load_dataset(_cfg("DATASETS.SPLITS.SEED", "2"), "SmallVehicleIDViewpoint")
    assert a.query == b.query and a.gallery == b.gallery
    assert a.gallery != c.gallery
    assert len(a.gallery) == 6 and len({g[1] for g in a.gallery}) == 6  # one gallery image per identity
    assert [it[3] for it in a.train[:4]] == [0, 1, 0, 1]


def test_vehicleid_listed_image_missing(tmp_path, monkeypatch):
    base = _vehicleid_tree(str(tmp_path))
    os.remove(os.path.join(base, "image", "0000001.jpg"))
    monkeypatch.setenv("FASTREID_DATASETS", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match=r"train_list.txt:2: listed image .*0000001.jpg does not exist"):
        load_dataset(_cfg(), "VehicleIDViewpoint")


def test_vehicleid_id_that_is_not_a_number_names_file_and_line(tmp_path, monkeypatch):
    base = _vehicleid_tree(str(tmp_path))
    test_list = os.path.join(base, "train_test_split", "test_list_800.txt")
    lines = open(test_list).readlines()
    lines[2] = lines[2].split()[0] + " car7\n"
    open(test_list, "w").writelines(lines)
    monkeypatch.setenv("FASTREID_DATASETS", str(tmp_path))
    with pytest.raises(AnnotationError, match=r"test_list_800.txt:3: image and vehicle ids must be numbers, got "
                                              r"'0000002 car7'"):
        load_dataset(_cfg(), "SmallVehicleIDViewpoint")


def test_split_query_gallery_is_order_independent():
    items = [(f"{i}.jpg", i // 3, i, 0) for i in range(12)]
    assert split_query_gallery(items, 5) == split_query_gallery(list(reversed(items)), 5)


def test_vehicleid_protocol_averages_seeded_splits(tmp_path, monkeypatch):
    from fastreid_val.engine import ViewpointTrainer

    _vehicleid_tree(str(tmp_path), n_ids=5, per_id=3)
    monkeypatch.setenv("FASTREID_DATASETS", str(tmp_path))
    base = ["DATASETS.TESTS", '("SmallVehicleIDViewpoint",)', "MODEL.BACKBONE.DEPTH", "18x",
            "MODEL.BACKBONE.FEAT_DIM", "512", "MODEL.BACKBONE.PRETRAIN", "False", "MODEL.HEADS.NUM_CLASSES", "5",
            "TEST.IMS_PER_BATCH", "8"]
    cfg = _cfg(*base, "DATASETS.SPLITS.NUM", "3")
    torch.manual_seed(0)
    model = ViewpointTrainer.build_model(cfg)
    from fastreid_val.data.vehicleid import SmallVehicleIDViewpoint

    built, forwards = [], []
    init = SmallVehicleIDViewpoint.__init__
    monkeypatch.setattr(SmallVehicleIDViewpoint, "__init__", lambda self, *a, **k: built.append(1) or init(self, *a, **k))
    handle = model.register_forward_hook(lambda *_: forwards.append(1))
    mean = ViewpointTrainer.test(cfg, model)
    handle.remove()
    # 15 test images (5 identities x 3), batch 8: one extraction is 2 batches, for the 3 splits together
    assert len(built) == 1 and len(forwards) == 2, (len(built), len(forwards))
    singles = [ViewpointTrainer.test(_cfg(*base, "DATASETS.SPLITS.SEED", str(k)), model) for k in range(3)]
    assert mean["mAP"] == pytest.approx(sum(s["mAP"] for s in singles) / 3, abs=1e-4)
    assert len({round(float(s["mAP"]), 4) for s in singles}) > 1  # the splits differ


def test_three_test_sets_keep_their_metrics_split_spread_and_cmc(tmp_path, monkeypatch):
    import json

    from fastreid_val.engine import ViewpointTrainer
    from fastreid_val.engine.launcher import metrics_by_test_set, write_results
    from fastreid_val.experiments.compare import collect, summarise, table_rows

    _vehicleid_tree(str(tmp_path / "data"), n_ids=5, per_id=3)
    monkeypatch.setenv("FASTREID_DATASETS", str(tmp_path / "data"))
    out = tmp_path / "run"
    out.mkdir()
    sets = ("SmallVehicleIDViewpoint", "MediumVehicleIDViewpoint", "LargeVehicleIDViewpoint")
    cfg = _cfg("DATASETS.TESTS", str(sets), "MODEL.BACKBONE.DEPTH", "18x", "MODEL.BACKBONE.FEAT_DIM", "512",
               "MODEL.BACKBONE.PRETRAIN", "False", "MODEL.HEADS.NUM_CLASSES", "5", "TEST.IMS_PER_BATCH", "8",
               "DATASETS.SPLITS.NUM", "3", "OUTPUT_DIR", str(out))
    torch.manual_seed(0)
    results = ViewpointTrainer.test(cfg, ViewpointTrainer.build_model(cfg))
    assert list(results) == list(sets)
    for name in sets:
        assert {"Rank-1", "mAP", "mAP-std", "xview-mAP"} <= set(results[name])
        assert results[name]["mAP-std"] >= 0
    write_results(str(out), metrics_by_test_set(cfg, results), train_time_s=1.0)
    saved = json.load(open(out / "results.json"))
    assert saved["metrics"][sets[1]]["mAP"] == pytest.approx(results[sets[1]]["mAP"])
    cmc = json.load(open(out / "cmc.json"))
    assert list(cmc) == list(sets) and all(0 <= c <= 1 for curve in cmc.values() for c in curve)
    rows = table_rows(summarise({"val": [collect(str(out))]}))
    assert [label for label, _ in rows] == [f"val / {name}" for name in sets]


def test_test_viewpoints_are_front_and_rear_whatever_v(veri_root, fixture_lines):
    from fastreid_val.data.build import build_viewpoint_test_loader

    truth = {}
    for line in fixture_lines:
        name, o, nf, nr = _fields(line)
        truth[name] = orientation_to_viewpoint(o, 2, nf, nr)
    for v in ("2", "4", "8"):
        loader, _ = build_viewpoint_test_loader(_cfg("MODEL.VAL.NUM_VIEWPOINTS", v), "VeRiViewpoint")
        seen = {os.path.basename(p): int(x) for b in loader for p, x in zip(b["img_paths"], b["viewpoints"])}
        assert seen == {n: truth[n] for n in seen}, v  # the V=2 labels of the annotation, for every V
