"""The in-memory training loader (fastreid_val/data/in_memory.py): its colour jitter against FastReID's PIL
transforms, op by op and in distribution; the switch; its items against the file loader's."""
import numpy as np
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image

from fastreid_val.data.common import ViewpointCommDataset
from fastreid_val.data.in_memory import (InMemoryViewpointDataset, adjust_brightness, adjust_contrast, adjust_hue,
                                         adjust_saturation, color_jitter, decode, memory_plan)
from fastreid_val.engine import build_config
from fastreid_val.errors import InvalidConfigError
from fastreid.data.transforms import build_transforms


def _image(seed=0, size=24):
    """A smooth colour image with saturated and grey regions (every hue, every brightness)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    arr = np.stack([255 * x, 255 * y, 255 * (1 - x) * (1 - y)], axis=-1)
    arr = arr * (0.6 + 0.4 * rng.random((1, 1, 3))) + rng.normal(0, 12, arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _tensor(img):
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)[None].float()


@pytest.mark.parametrize("ours, theirs, factor", [
    (adjust_brightness, TF.adjust_brightness, 0.85), (adjust_brightness, TF.adjust_brightness, 1.15),
    (adjust_contrast, TF.adjust_contrast, 0.85), (adjust_contrast, TF.adjust_contrast, 1.15),
    (adjust_saturation, TF.adjust_saturation, 0.9), (adjust_saturation, TF.adjust_saturation, 1.1),
    (adjust_hue, TF.adjust_hue, -0.1), (adjust_hue, TF.adjust_hue, 0.07)])
def test_each_op_matches_pil(ours, theirs, factor):
    img = _image()
    want = _tensor(theirs(img, factor))
    got = ours(_tensor(img), torch.tensor([factor]))
    diff = (got - want).abs()
    assert not torch.equal(want, _tensor(img))  # the factor changes the image
    # PIL rounds each op to 8 bits (hue in 256 steps of HSV, one step moving a
    # saturated channel by up to 6 levels): within a level of it (hue: a few), on average well under one.
    assert diff.mean() < 0.6 and diff.max() <= (8 if ours is adjust_hue else 1), (diff.mean(), diff.max())


def test_jitter_distribution_matches_fastreids_transform():
    """Same probability of being jittered, same spread of brightness and of hue, as FastReID's
    RandomApply(ColorJitter) with the SynthVeRi recipe's ranges."""
    torch.manual_seed(0)
    img, n = _image(1, 16), 3000
    theirs_t = T.RandomApply([T.ColorJitter(0.15, 0.15, 0.1, 0.1)], p=0.5)
    theirs = torch.cat([_tensor(theirs_t(img)) for _ in range(n)])
    cj = theirs_t.transforms[0]
    ours = color_jitter(_tensor(img).expand(n, -1, -1, -1).to(torch.uint8), 0.5,
                        [cj.brightness, cj.contrast, cj.saturation, cj.hue])
    base = _tensor(img)

    def stats(x):
        changed = (x != base).flatten(1).any(dim=1).float()
        return changed.mean().item(), x.mean(dim=(1, 2, 3)).numpy(), (x[:, 0] - x[:, 2]).mean(dim=(1, 2)).numpy()

    (p_ours, bright_ours, hue_ours), (p_theirs, bright_theirs, hue_theirs) = stats(ours), stats(theirs)
    assert abs(p_ours - 0.5) < 0.04 and abs(p_theirs - 0.5) < 0.04

    def ks(a, b):  # two-sample Kolmogorov-Smirnov statistic
        grid = np.sort(np.concatenate([a, b]))
        return np.abs(np.searchsorted(np.sort(a), grid, "right") / len(a)
                      - np.searchsorted(np.sort(b), grid, "right") / len(b)).max()

    # 3,000 draws each: a KS statistic above ~0.035 would reject equal distributions at 5%.
    assert ks(bright_ours, bright_theirs) < 0.05 and ks(hue_ours, hue_theirs) < 0.05
    # and a jitter without hue would fail: the statistic sees what hue does
    no_hue = color_jitter(_tensor(img).expand(n, -1, -1, -1), 0.5, [cj.brightness, cj.contrast, cj.saturation, None])
    assert ks(stats(no_hue)[2], hue_theirs) > 0.1


def _cfg(*opts):
    return build_config("configs/SynthVeRi/val_mnv2.yml", ["MODEL.DEVICE", "cpu", *opts])


def test_switch():
    def plan(*opts, device="cpu"):
        cfg = _cfg(*opts)
        cfg.defrost()
        cfg.MODEL.DEVICE = device  # as resolved: a machine without CUDA turns a config's cuda into cpu
        tcfg = cfg.clone()
        tcfg.defrost()
        tcfg.INPUT.FLIP.ENABLED = False
        return memory_plan(cfg, build_transforms(tcfg, is_train=True), 3200)

    resize, jitter = plan()
    assert list(resize.size) == [64, 64] and jitter.p == 0.5
    assert plan("INPUT.CJ.ENABLED", "False")[1] is None
    assert plan("DATALOADER.IN_MEMORY", "off") is None
    assert plan(device="cuda") is None and plan("DATALOADER.IN_MEMORY", "on", device="cuda")
    assert plan("DATALOADER.IN_MEMORY_MAX_MB", "30") is None and plan("DATALOADER.IN_MEMORY_MAX_MB", "40")  # 37.5 MB
    assert plan("INPUT.PADDING.ENABLED", "True") is None  # auto: FastReID's file loader
    with pytest.raises(InvalidConfigError, match="include Pad, RandomCrop, which the in-memory loader does not apply"):
        plan("INPUT.PADDING.ENABLED", "True", "DATALOADER.IN_MEMORY", "on")
    with pytest.raises(InvalidConfigError, match="DATALOADER.IN_MEMORY 'maybe': use auto, on or off"):
        plan("DATALOADER.IN_MEMORY", "maybe")


def test_items_equal_the_file_loaders_and_flip_with_their_label(tmp_path):
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"000{i}_c001_0000000{i}_0.jpg"))
        _image(i, 20).save(paths[i])
    items = [(p, 1, "c001", i % 2) for i, p in enumerate(paths)]
    resize = T.Resize([12, 12], interpolation=3)
    files = ViewpointCommDataset(items, T.Compose([resize, T.PILToTensor()]), relabel=False)
    memory = InMemoryViewpointDataset(items, decode(items, resize), relabel=False)
    for i in range(3):
        assert torch.equal(memory[i]["images"], files[i]["images"]) and memory[i]["viewpoints"] == i % 2
    flipped = InMemoryViewpointDataset(items, decode(items, resize), relabel=False, flip_prob=1.0, flip_map=[1, 0])
    assert torch.equal(flipped[1]["images"], files[1]["images"].flip(-1)) and flipped[1]["viewpoints"] == 0
