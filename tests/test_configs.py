"""Every YAML in configs/ loads through setup's config path and builds its model on CPU."""
import glob
import os

import pytest
import torch
from fastreid.modeling import build_model
from fastreid.modeling.heads import REID_HEADS_REGISTRY
from fastreid.modeling.meta_arch import META_ARCH_REGISTRY

from fastreid_val.engine import build_config

ROOT = os.path.join(os.path.dirname(__file__), "..")
CONFIGS = sorted(p for p in glob.glob(os.path.join(ROOT, "configs", "**", "*.yml"), recursive=True)
                 if not os.path.basename(p).startswith("Base-"))


def test_every_config_the_tools_readme_and_docs_name_exists():
    import re

    from fastreid_val.experiments.demo import DEMO_CONFIGS
    from fastreid_val.experiments.compare import PRESETS

    docs = [os.path.join(ROOT, "README.md")] + glob.glob(os.path.join(ROOT, "docs", "*.md"))
    text = "\n".join(open(p).read() for p in docs)
    named = set(re.findall(r"configs/[\w./-]+\.yml", text))
    named |= {c for preset in PRESETS.values() for c in preset} | {c for _, c in DEMO_CONFIGS}
    assert len(named) > 10
    for config in sorted(named):
        assert os.path.isfile(os.path.join(ROOT, config)), config


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.relpath(p, ROOT))
def test_config_loads_and_builds(path):
    vit = "vit" in os.path.basename(path)  # FastReID's small depth on a 2x2 grid: ViT-B costs 5 s a build
    cfg = build_config(path, ["MODEL.BACKBONE.PRETRAIN", "False", "MODEL.HEADS.NUM_CLASSES", "10"] +
                       (["MODEL.BACKBONE.DEPTH", "small", "INPUT.SIZE_TRAIN", "[32, 32]", "INPUT.SIZE_TEST", "[32, 32]"]
                        if vit else []))
    assert cfg.MODEL.DEVICE == ("cuda" if torch.cuda.is_available() else "cpu")
    model = build_model(cfg)
    model.eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, *cfg.INPUT.SIZE_TEST) * 255)
    # the embedding: BNNeck feature of EMBEDDING_DIM (or the backbone's FEAT_DIM), 8 branches for MGN
    dim = cfg.MODEL.HEADS.EMBEDDING_DIM or cfg.MODEL.BACKBONE.FEAT_DIM
    branches = 8 if "MGN" in cfg.MODEL.META_ARCHITECTURE else 1
    assert out.shape == (2, dim * branches) and torch.isfinite(out).all()


def test_registry_lookups():
    from fastreid_val.modeling import IdentityViewpointHead, ViewpointBaseline

    assert REID_HEADS_REGISTRY.get("IdentityViewpointHead") is IdentityViewpointHead
    assert META_ARCH_REGISTRY.get("ViewpointBaseline") is ViewpointBaseline


@pytest.mark.parametrize("arch", ["ViewpointBaseline", "ViewpointMGN"])
def test_val_settings_and_batch_viewpoints(arch):
    from fastreid_val.modeling.meta_arch import ViewpointAwareMixin

    cls = META_ARCH_REGISTRY.get(arch)
    assert issubclass(cls, ViewpointAwareMixin)
    cfg = build_config(os.path.join(ROOT, "configs/Base-VAL.yml"), ["MODEL.VAL.REUNION_WEIGHT", "0.1",
                                                                   "MODEL.BACKBONE.PRETRAIN", "False"])
    assert cls.from_config(cfg)["val_loss"].reunion_weight == 0.1
    batch = {"targets": torch.tensor([3, 4]), "viewpoints": torch.tensor([1, 0])}
    assert cls.batch_viewpoints(batch, "cpu").tolist() == [1, 0]
    assert cls.batch_viewpoints({"targets": torch.tensor([3, 4])}, "cpu").tolist() == [-1, -1]
    precise_bn = {"targets": torch.tensor([-1, -1]), "viewpoints": torch.tensor([1, 0])}
    assert cls.batch_viewpoints(precise_bn, "cpu").tolist() == [-1, -1]
    assert precise_bn["viewpoints"].tolist() == [1, 0]  # the batch itself is left alone


def test_head_inference_matches_stock_head_embedding():
    from fastreid.modeling.heads import EmbeddingHead

    from fastreid_val.modeling import IdentityViewpointHead

    cfg = build_config(os.path.join(ROOT, "configs/SynthVeRi/val_mnv2.yml"), ["MODEL.HEADS.NUM_CLASSES", "5"])
    torch.manual_seed(0)
    ours = IdentityViewpointHead(cfg).eval()
    stock = EmbeddingHead(cfg).eval()
    stock.bottleneck.load_state_dict(ours.bottleneck.state_dict())
    x = torch.randn(3, 1280, 2, 2)
    assert torch.equal(ours(x), stock(x))
    assert ours.weight.shape == (10, 1280)  # C x V = 5 x 2 sub-centers


@pytest.mark.parametrize("key, value, message", [
    ("MODEL.VAL.NUM_VIEWPOINTS", "0", "NUM_VIEWPOINTS must be >= 1"),
    ("MODEL.VAL.REUNION_WEIGHT", "-1.0", "REUNION_WEIGHT"),
])
def test_bad_val_settings(key, value, message):
    with pytest.raises(ValueError, match=message):
        build_config("", [key, value])


def test_unknown_key():
    with pytest.raises(KeyError, match="MODEL.VAL.NOPE"):
        build_config("", ["MODEL.VAL.NOPE", "1"])


@pytest.mark.parametrize("config", ["configs/VeRi/mgn_R50-ibn.yml", "configs/VeRi/mgn_R50-ibn_val.yml"])
def test_mgn_input_heights_that_give_too_few_stripes_are_refused(config):
    """MGN cuts 1/16 of the input height into 2 and 3 stripes; 64 gives 4 rows, which torch.chunk cuts
    into 2 stripes where MGN needs 3 (its forward would fail at the first batch)."""
    import torch

    from fastreid_val.config import _stripes
    from fastreid_val.errors import InvalidConfigError

    for rows in range(1, 20):  # the arithmetic is torch.chunk's
        x = torch.zeros(1, 1, rows)
        assert (_stripes(rows, 2), _stripes(rows, 3)) == (len(x.chunk(2, dim=2)), len(x.chunk(3, dim=2)))
    for key in ("INPUT.SIZE_TRAIN", "INPUT.SIZE_TEST"):
        with pytest.raises(InvalidConfigError, match=rf"{key} height 64 .* 4 rows.* 2 and 2 stripes.* e\.g\. 48, 80"):
            build_config(config, [key, "[64, 64]"])
    for height in (48, 80, 256):
        build_config(config, ["INPUT.SIZE_TRAIN", f"[{height}, {height}]", "INPUT.SIZE_TEST", f"[{height}, {height}]"])
