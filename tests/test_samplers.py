"""Every training sampler FastReID has works (or is refused, with the reason) with viewpoint-labelled items (path, pid, camid, viewpoint).

FastReID's samplers read items as triples (``BalancedIdentitySampler`` unpacks three fields,
fastreid/data/samplers/triplet_sampler.py:90); the viewpoint loader gives them the triples.
"""
import pytest
from fastreid.data import samplers

from fastreid_val.data.build import build_viewpoint_train_loader
from fastreid_val.engine import build_config
from fastreid_val.errors import InvalidConfigError

from .trees import veri_tree

TRAINING_SAMPLERS = sorted(set(samplers.__all__) - {"InferenceSampler", "SetReWeightSampler"})


def test_the_list_is_fastreids():
    assert TRAINING_SAMPLERS == ["BalancedIdentitySampler", "ImbalancedDatasetSampler", "NaiveIdentitySampler",
                                 "TrainingSampler"]


def _cfg(sampler):
    return build_config("configs/VeRi/sbs_R50-ibn.yml", [
        "DATALOADER.SAMPLER_TRAIN", sampler, "DATALOADER.NUM_INSTANCE", "4", "SOLVER.IMS_PER_BATCH", "8",
        "DATALOADER.NUM_WORKERS", "0", "INPUT.SIZE_TRAIN", "[16, 16]", "INPUT.AUTOAUG.ENABLED", "False",
        "MODEL.DEVICE", "cpu"])


def test_set_reweight_sampler_is_refused_not_waited_for(tmp_path, monkeypatch):
    # FastReID's SetReWeightSampler asserts batch > sum(SET_WEIGHT) x NUM_INSTANCE and yields only batches
    # of exactly that size: it never yields, and training would wait for its first batch forever.
    veri_tree(str(tmp_path))
    monkeypatch.setenv("FASTREID_DATASETS", str(tmp_path))
    with pytest.raises(InvalidConfigError, match="SetReWeightSampler never yields"):
        build_viewpoint_train_loader(_cfg("SetReWeightSampler"))


@pytest.mark.parametrize("sampler", TRAINING_SAMPLERS)
def test_sampler_gives_batches_with_viewpoints(tmp_path, monkeypatch, sampler):
    veri_tree(str(tmp_path))
    monkeypatch.setenv("FASTREID_DATASETS", str(tmp_path))
    loader = build_viewpoint_train_loader(_cfg(sampler))
    batch = next(iter(loader))
    n = 8
    assert batch["images"].shape == (n, 3, 16, 16)
    assert batch["viewpoints"].shape == (n,) and set(batch["viewpoints"].tolist()) <= {0, 1}
    # the viewpoint of each sampled image is its own (the sampler's indices index the viewpoint items)
    items = {it[0]: it[3] for it in loader.dataset.img_items}
    flipped = [v for p, v in zip(batch["img_paths"], batch["viewpoints"].tolist()) if items[p] != v]
    assert not flipped  # V = 2 labels do not change under a flip
