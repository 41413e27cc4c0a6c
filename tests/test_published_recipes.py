"""FastReID's three published vehicle recipes resolve, key for key, to FastReID's values.

``tests/data/fastreid_published_recipes.json`` holds, for each recipe, every value FastReID's own
config file (with its ``_BASE_`` files) sets that differs from FastReID's defaults. Our file must give
exactly FastReID's defaults plus those values, except the dataset names (ours read viewpoints), the
output folder, and the nodes this plugin adds.
"""
import json
import os

import pytest
from fastreid.config import get_cfg

from fastreid_val import add_val_config

ROOT = os.path.join(os.path.dirname(__file__), "..")
PUBLISHED = json.load(open(os.path.join(os.path.dirname(__file__), "data", "fastreid_published_recipes.json")))
OURS_ONLY = ("DATASETS.NAMES", "DATASETS.TESTS", "OUTPUT_DIR", "MODEL.VAL.", "MODEL.SIE.", "DATASETS.VIEWPOINT.",
             "DATASETS.SPLITS.", "DATASETS.SYNTHVERI.", "RUN.", "DATALOADER.IN_MEMORY")


def _flat(node, prefix=""):
    out = {}
    for key, value in node.items():
        if hasattr(value, "items"):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = list(value) if isinstance(value, tuple) else value
    return out


def _resolved(path):
    cfg = get_cfg()
    add_val_config(cfg)
    cfg.merge_from_file(path)  # as written: no device or AMP resolution
    return {k: v for k, v in _flat(cfg).items() if not k.startswith(OURS_ONLY)}


def test_the_three_published_recipes_are_held():
    assert sorted(PUBLISHED) == ["VERIWild/bagtricks_R50-ibn.yml", "VeRi/sbs_R50-ibn.yml",
                                 "VehicleID/bagtricks_R50-ibn.yml"]
    assert PUBLISHED["VeRi/sbs_R50-ibn.yml"]["MODEL.HEADS.CLS_LAYER"] == "CircleSoftmax"


@pytest.mark.parametrize("recipe", sorted(PUBLISHED))
def test_published_recipe_resolves_to_fastreids_values(recipe):
    expected = {k: v for k, v in _flat(get_cfg()).items() if not k.startswith(OURS_ONLY)}
    expected.update(PUBLISHED[recipe])
    ours = _resolved(os.path.join(ROOT, "configs", recipe))
    assert ours.keys() == expected.keys()
    assert {k: v for k, v in ours.items() if v != expected[k]} == {}


def test_other_recipes_say_they_are_ours():
    import glob

    for path in sorted(glob.glob(os.path.join(ROOT, "configs", "*", "*_R50-ibn*.yml"))):
        name = os.path.relpath(path, os.path.join(ROOT, "configs"))
        first = open(path).readline()
        if name in PUBLISHED:
            assert first.startswith("# FastReID's published"), name
        elif not name.endswith("_val.yml"):
            assert first.startswith("# Not published by FastReID"), name


@pytest.mark.parametrize("path", ["VeRi/bagtricks_R50-ibn.yml", "VeRi/agw_R50-ibn.yml", "VehicleID/sbs_R50-ibn.yml",
                                  "VehicleID/mgn_R50-ibn.yml", "VehicleID/agw_R50-ibn.yml"])
def test_extrapolated_recipes_are_coherent(path):
    cfg = _resolved(os.path.join(ROOT, "configs", path))
    if cfg["SOLVER.SCHED"] == "MultiStepLR":
        assert max(cfg["SOLVER.STEPS"]) < cfg["SOLVER.MAX_EPOCH"], "a step that never comes"
        assert cfg["SOLVER.ETA_MIN_LR"] == get_cfg().SOLVER.ETA_MIN_LR, "ETA_MIN_LR is read by the cosine schedule only"
    if cfg["SOLVER.FREEZE_ITERS"] > 0:
        assert cfg["MODEL.FREEZE_LAYERS"], "FREEZE_ITERS without FREEZE_LAYERS freezes nothing"
    if path.startswith("VehicleID"):
        # VehicleID has about 8 images per identity: more instances repeat images within a batch
        assert cfg["DATALOADER.NUM_INSTANCE"] <= 8
