#!/usr/bin/env python
"""Head + loss, forward + backward: IdentityViewpointHead + VAL vs FastReID's EmbeddingHead + CircleSoftmax
over the same C x V classes. N=64, d=2048, C=576, V=2 (goal: ratio <= 1.25)."""
import argparse
import torch
import torch.nn.functional as F

import fastreid_val  # noqa: F401
from fastreid.modeling.heads import EmbeddingHead
from fastreid_val.engine import build_config
from fastreid_val.experiments.timing import device_name, interleaved, machine
from fastreid_val.modeling import IdentityViewpointHead, partition_loss, reunion_loss


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--d", type=int, default=2048)
    p.add_argument("--c", type=int, default=576)
    p.add_argument("--v", type=int, default=2)
    p.add_argument("--hw", type=int, default=8, help="spatial size of the backbone feature map")
    p.add_argument("--rounds", type=int, default=60, help="interleaved timing rounds (median reported)")
    a = p.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    opts = ["MODEL.BACKBONE.FEAT_DIM", str(a.d), "MODEL.HEADS.NUM_CLASSES", str(a.c), "MODEL.VAL.NUM_VIEWPOINTS", str(a.v),
            "MODEL.BACKBONE.PRETRAIN", "False"]
    cfg = build_config("configs/Base-VAL.yml", opts)
    ours = IdentityViewpointHead(cfg).to(device).train()
    stock_cfg = build_config("configs/Base-VAL.yml", opts + ["MODEL.HEADS.NUM_CLASSES", str(a.c * a.v),
                                                               "MODEL.META_ARCHITECTURE", "Baseline",
                                                               "MODEL.HEADS.NAME", "EmbeddingHead",
                                                               "MODEL.HEADS.CLS_LAYER", "CircleSoftmax",
                                                               "MODEL.HEADS.SCALE", "48", "MODEL.HEADS.MARGIN", "0.5"])
    stock = EmbeddingHead(stock_cfg).to(device).train()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(a.n, a.d, a.hw, a.hw, generator=g).to(device).requires_grad_()
    ids = torch.randint(0, a.c, (a.n,), generator=g).to(device)
    views = torch.randint(0, a.v, (a.n,), generator=g).to(device)
    flat = ids * a.v + views

    def run_ours():
        out = ours(x, ids)
        loss = partition_loss(out["cosine"], ids, views) + reunion_loss(out["unit_centers"], normalized=True)
        loss.backward()

    def run_stock():
        out = stock(x, flat)
        F.cross_entropy(out["cls_outputs"], flat).backward()

    t = interleaved({"EmbeddingHead + CircleSoftmax (C*V classes)": run_stock,
                     "IdentityViewpointHead + VAL": run_ours}, rounds=a.rounds)
    print(f"head + loss, forward + backward, N={a.n} d={a.d} C={a.c} V={a.v}, feature map {a.hw}x{a.hw}")
    print(f"machine: {machine()}")
    for name, sec in t.items():
        print(f"  {name:48s} {sec * 1e3:8.2f} ms on {device_name(device)}")
    ratio = t["IdentityViewpointHead + VAL"] / t["EmbeddingHead + CircleSoftmax (C*V classes)"]
    print(f"ratio VAL / stock: {ratio:.3f} (goal <= 1.25)")


if __name__ == "__main__":
    main()
