#!/usr/bin/env python
"""One training iteration with a real backbone (ResNet-18, 128x128, batch 32, C=576): VAL vs the
stock-head baseline (goal: ratio <= 1.05), and inference of both (same embedding path)."""
import torch

import fastreid_val  # noqa: F401
from fastreid.modeling import build_model
from fastreid.utils.events import EventStorage
from fastreid_val.engine import build_config
from fastreid_val.experiments.timing import device_name, interleaved, machine

COMMON = ["MODEL.BACKBONE.NAME", "build_resnet_backbone", "MODEL.BACKBONE.DEPTH", "18x", "MODEL.BACKBONE.FEAT_DIM", "512", "MODEL.BACKBONE.PRETRAIN", "False",
          "MODEL.HEADS.NUM_CLASSES", "576", "INPUT.SIZE_TRAIN", "[128, 128]"]


def build(config):
    cfg = build_config(config, COMMON)
    model = build_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    return model, opt


def main():
    torch.manual_seed(0)
    val, val_opt = build("configs/SynthVeRi/val_mnv2.yml")
    base, base_opt = build("configs/SynthVeRi/softmax_mnv2.yml")
    device = val.device
    n = 32
    images = torch.rand(n, 3, 128, 128, device=device) * 255
    batch = {"targets": torch.randint(0, 576, (n,), device=device),
             "viewpoints": torch.randint(0, 2, (n,), device=device)}

    def step(model, opt):
        def run():
            model.train()
            losses = model({**batch, "images": images.clone()})
            opt.zero_grad()
            sum(losses.values()).backward()
            opt.step()
        return run

    def infer(model):
        def run():
            model.eval()
            with torch.no_grad():
                model({"images": images.clone()})
        return run

    with EventStorage(0):
        train = interleaved({"baseline (EmbeddingHead + CE)": step(base, base_opt),
                             "VAL (IdentityViewpointHead)": step(val, val_opt)}, rounds=7)
    test = interleaved({"baseline inference": infer(base), "VAL inference": infer(val)}, rounds=7)
    print(f"one training iteration, ResNet-18, 128x128, batch {n}, C=576, V=2; machine: {machine()}")
    for name, sec in {**train, **test}.items():
        print(f"  {name:34s} {sec * 1e3:9.1f} ms on {device_name(device)}")
    print(f"training ratio VAL / baseline: {train['VAL (IdentityViewpointHead)'] / train['baseline (EmbeddingHead + CE)']:.3f} (goal <= 1.05)")
    print(f"inference ratio VAL / baseline: {test['VAL inference'] / test['baseline inference']:.3f}")


if __name__ == "__main__":
    main()
