"""SynthVeRi: determinism, VeRi layout and annotation, keypoints vs orientation, concurrent first use."""
import hashlib
import multiprocessing as mp
import os

import pytest

from fastreid_val.data.annotations import read_keypoint_file
from fastreid_val.data.synthveri import SynthSettings, ensure_synthveri, generate
from fastreid_val.data.synthveri.dataset import SynthVeRi

from .conftest import TINY

SMALL = SynthSettings(num_train_ids=6, num_test_ids=4, images_per_id=6, num_cameras=3, cameras_per_id=2,
                      width=32, height=32, seed=7)


def _digest(folder):
    h = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(folder)):
        for f in sorted(files):
            h.update(f.encode())
            h.update(open(os.path.join(dirpath, f), "rb").read())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    generate(str(tmp_path / "a"), SMALL)
    generate(str(tmp_path / "b"), SMALL)
    generate(str(tmp_path / "c"), SynthSettings(**{**SMALL.__dict__, "seed": 8}))
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_layout_parses_through_veri_loader(tmp_path):
    ds = SynthVeRi(root=str(tmp_path), settings=TINY, num_viewpoints=2)
    assert len(ds.train) == 24 * 8 and {it[3] for it in ds.train} <= {0, 1}
    assert all(it[3] >= 0 for it in ds.train + ds.query + ds.gallery)
    assert len({it[1] for it in ds.query}) == 12  # queries of every test identity, from one camera each
    assert len(ds.gallery) == 12 * 8


def test_keypoints_consistent_with_orientation(tmp_path):
    generate(str(tmp_path), SMALL)
    labels = read_keypoint_file(str(tmp_path / "keypoint_train.txt"))
    seen = set()
    for label in labels.values():
        seen.add(label.orientation)
        if label.orientation == 0:
            assert label.visible_front >= 1 and label.visible_rear == 0  # (occlusion may hide some)
        if label.orientation == 1:
            assert label.visible_rear >= 1 and label.visible_front == 0
    assert len(seen) >= 3


def _make(root):
    ensure_synthveri(root, SMALL)


def test_concurrent_first_use(tmp_path):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_make, args=(str(tmp_path),)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    generate(str(tmp_path / "ref"), SMALL)
    assert _digest(tmp_path / SMALL.folder_name()) == _digest(tmp_path / "ref")
    assert not [d for d in os.listdir(tmp_path) if d.startswith(".synthveri-tmp")]


# sha256 over the file names and bytes (settings.json left out: it holds the format version) of SMALL
# at 6 models and 6 colours, written by the format-2 generator (commit a99f833, before shared cues
# existed) with Pillow 13.0.0: the independent-ends setting must still write exactly those files.
FORMAT2_DIGEST = "c5f4e2068ad43c380414ef2628885f0671bbd38c4b2c93b933a56f530aa9d57d"
ALL_GROUPS = SynthSettings(**{**SMALL.__dict__, "num_models": 6, "num_colours": 6})


def _digest_without_marker(folder):
    h = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(folder)):
        for f in sorted(files):
            if f != "settings.json":
                h.update(f.encode())
                h.update(open(os.path.join(dirpath, f), "rb").read())
    return h.hexdigest()


def test_independent_ends_write_the_earlier_format_byte_for_byte(tmp_path):
    import PIL

    if PIL.__version__.split(".")[0] != "13":
        pytest.skip(f"the reference digest was written by Pillow 13's JPEG encoder, this is {PIL.__version__}")
    generate(str(tmp_path), SynthSettings(**{**ALL_GROUPS.__dict__, "shared_cues": False}))
    assert _digest_without_marker(tmp_path) == FORMAT2_DIGEST


def test_shared_cues_put_one_plate_on_both_ends_and_a_roof_item():
    from fastreid_val.data.synthveri.generate import draw_identity

    shared, independent = [], []
    for pid in range(1, 61):
        a = draw_identity(SynthSettings(shared_cues=True), pid)[3]
        b = draw_identity(SynthSettings(shared_cues=False), pid)[3]
        shared.append(a)
        independent.append(b)
        assert (a.rear_plate, a.rear_plate_code) == (a.front_plate, a.front_plate_code)
        assert a.roof_item >= 0 and b.roof_item == -1
        # everything else is the same vehicle
        assert (a.front_plate, a.front_plate_code, a.grille, a.tail, a.stripe) == (
            b.front_plate, b.front_plate_code, b.grille, b.tail, b.stripe)
    differ = sum((b.rear_plate, b.rear_plate_code) != (b.front_plate, b.front_plate_code) for b in independent)
    assert differ > 40  # drawn independently: equal by chance in 1/24 of the identities
    assert len({(a.roof_item, a.roof_item_width) for a in shared}) == 10


def test_the_two_settings_differ_only_in_the_cues(tmp_path):
    generate(str(tmp_path / "with_shared_cues"), SMALL)
    generate(str(tmp_path / "independent"), SynthSettings(**{**SMALL.__dict__, "shared_cues": False}))
    for f in ("keypoint_train.txt", "keypoint_test.txt", "attributes.txt"):  # same poses, cameras, groups
        assert (tmp_path / "with_shared_cues" / f).read_text() == (tmp_path / "independent" / f).read_text()
    names = sorted(os.listdir(tmp_path / "with_shared_cues" / "image_train"))
    assert names == sorted(os.listdir(tmp_path / "independent" / "image_train"))
    same = sum((tmp_path / "with_shared_cues" / "image_train" / n).read_bytes() ==
               (tmp_path / "independent" / "image_train" / n).read_bytes() for n in names)
    assert same < len(names) // 4  # the roof item is in (nearly) every image


def test_folder_names_keep_the_settings_apart_and_the_config_key_reaches_them():
    from fastreid.config import get_cfg

    from fastreid_val.config import add_val_config
    from fastreid_val.data.synthveri import synth_settings

    assert SynthSettings().shared_cues is True and SynthSettings().folder_name() == "synthveri"
    assert SynthSettings(shared_cues=False).folder_name() == "synthveri-independent-ends"
    assert SMALL.folder_name() != SynthSettings(**{**SMALL.__dict__, "shared_cues": False}).folder_name()
    cfg = add_val_config(get_cfg())
    assert synth_settings(cfg) == SynthSettings()
    cfg.DATASETS.SYNTHVERI.SHARED_CUES = False
    assert synth_settings(cfg) == SynthSettings(shared_cues=False)
