#!/usr/bin/env python
"""One training iteration with a real backbone, VAL vs the stock-head baseline of the same recipe
(goal: ratio <= 1.05), and inference of both (same embedding path), measured side by side:

* ResNet-18, 128x128, batch 32, C=576 (the SynthVeRi recipes' heads);
* the ViT recipes (configs/VeRi/bagtricks_vit.yml and its VAL twin: CE + triplet vs VAL + triplet, camera
  x view SIE fed) at FastReID's small depth (8 blocks of 768), 64x64, batch 32, C=576 (VeRi-776's identities);
* the demo's two recipes (``--case demo``, MobileNetV2 1.0x at 64x64, batch 64, C=200: SynthVeRi's
  ``softmax_mnv2.yml`` and ``val_mnv2.yml``): each lever on the step side by side
  (:mod:`fastreid_val.experiments.step_timing`); with ``--trained``, ``RUN.FLUSH_DENORMAL`` off and on,
  steps from the demo's finished runs (run `make demo` first).

    python benchmarks/train_step.py [--case resnet18|vit]
    python benchmarks/train_step.py --case demo [--steps N]
    python benchmarks/train_step.py --case demo --trained [--steps N]
"""
import argparse
import sys

import torch

import fastreid_val  # noqa: F401
from fastreid.modeling import build_model
from fastreid.utils.events import EventStorage
from fastreid_val.engine import build_config
from fastreid_val.errors import MissingFileError
from fastreid_val.experiments import step_timing
from fastreid_val.experiments.timing import device_name, interleaved, machine

RESNET18 = ["MODEL.BACKBONE.NAME", "build_resnet_backbone", "MODEL.BACKBONE.DEPTH", "18x", "MODEL.BACKBONE.FEAT_DIM", "512",
            "MODEL.BACKBONE.PRETRAIN", "False", "MODEL.HEADS.NUM_CLASSES", "576", "INPUT.SIZE_TRAIN", "[128, 128]"]
VIT_SMALL = ["MODEL.BACKBONE.DEPTH", "small", "MODEL.BACKBONE.PRETRAIN", "False", "MODEL.HEADS.NUM_CLASSES", "576",
             "INPUT.SIZE_TRAIN", "[64, 64]", "INPUT.SIZE_TEST", "[64, 64]"]
CASES = {
    "resnet18": ("ResNet-18, 128x128", 128, RESNET18, "configs/SynthVeRi/softmax_mnv2.yml", "configs/SynthVeRi/val_mnv2.yml"),
    "vit": ("ViT small depth (8 x 768), 64x64, SIE 20 cameras x 2 views", 64, VIT_SMALL, "configs/VeRi/bagtricks_vit.yml",
            "configs/VeRi/bagtricks_vit_val.yml"),
}


def build(config, opts):
    cfg = build_config(config, opts)
    model = build_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    return model, opt


def measure(case, n=32):
    title, size, opts, stock_config, val_config = CASES[case]
    torch.manual_seed(0)
    val, val_opt = build(val_config, opts)
    base, base_opt = build(stock_config, opts)
    device = val.device
    images = torch.rand(n, 3, size, size, device=device) * 255
    # the ViT recipes' triplet loss needs positives: 4 images an identity, as their sampler gives
    targets = torch.arange(n, device=device) // 4 if case == "vit" else torch.randint(0, 576, (n,), device=device)
    batch = {"targets": targets,
             "viewpoints": torch.randint(0, 2, (n,), device=device), "camids": torch.randint(0, 20, (n,), device=device)}

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
                model({"images": images.clone(), "camids": batch["camids"]})
        return run

    with EventStorage(0):
        train = interleaved({"baseline (EmbeddingHead + CE)": step(base, base_opt),
                             "VAL (IdentityViewpointHead)": step(val, val_opt)}, rounds=7)
    test = interleaved({"baseline inference": infer(base), "VAL inference": infer(val)}, rounds=7)
    print(f"one training iteration, {title}, batch {n}, C=576, V=2; machine: {machine()}")
    for name, sec in {**train, **test}.items():
        print(f"  {name:34s} {sec * 1e3:9.1f} ms on {device_name(device)}")
    print(f"training ratio VAL / baseline: {train['VAL (IdentityViewpointHead)'] / train['baseline (EmbeddingHead + CE)']:.3f} (goal <= 1.05)")
    print(f"inference ratio VAL / baseline: {test['VAL inference'] / test['baseline inference']:.3f}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", choices=[*sorted(CASES), "demo"], action="append",
                   help="default: resnet18 and vit (demo: the levers, a few minutes more)")
    p.add_argument("--steps", type=int, default=5, help="timed steps of each candidate (--case demo)")
    p.add_argument("--loop-only", action="store_true",
                   help="--case demo: only the full loop against the step on a batch in memory, for each loader")
    p.add_argument("--trained", action="store_true",
                   help="--case demo: RUN.FLUSH_DENORMAL off and on, steps from the demo's finished runs "
                        f"({' and '.join(step_timing.TRAINED.values())}, written by `make demo`)")
    args = p.parse_args()
    for case in args.case or list(CASES):
        if case == "demo" and args.trained:
            try:
                step_timing.measure_trained(args.steps)
            except MissingFileError as e:
                sys.exit(f"error: {e}")
        elif case == "demo":
            step_timing.measure(args.steps, loop_only=args.loop_only)
        else:
            measure(case)


if __name__ == "__main__":
    main()
