"""Feature analysis of a trained model: the paper's Fig. 1 as a measurement, and ranked lists.

* ``distances.png``: histograms of cosine distance for intra-identity pairs seen from the same
  viewpoint, intra-identity pairs across viewpoints, and inter-identity pairs (test set).
* ``ranked_lists.png``: a few queries with their top-k gallery images (green: same identity).
"""
import logging
import os

import numpy as np
import torch
import torch.nn.functional as F
from fastreid.evaluation.evaluator import inference_context
from fastreid.utils.checkpoint import Checkpointer
from PIL import Image, ImageDraw

logger = logging.getLogger(__name__)

__all__ = ["extract", "pair_distances", "plot_distances", "ranked_lists"]


@torch.no_grad()
def extract(cfg, model, dataset_name):
    from ..engine.trainer import ViewpointTrainer

    loader, num_query = ViewpointTrainer.build_test_loader(cfg, dataset_name)
    feats, pids, cams, views, paths = [], [], [], [], []
    with inference_context(model):
        for batch in loader:
            feats.append(F.normalize(model(batch).float().cpu(), dim=1))
            pids.append(batch["targets"].cpu())
            cams.append(batch["camids"].cpu())
            views.append(batch["viewpoints"].cpu())
            paths += list(batch["img_paths"])
    cat = lambda xs: torch.cat(xs).numpy()  # noqa: E731
    return cat(feats), cat(pids), cat(cams), cat(views), paths, num_query


def pair_distances(feats, pids, views, max_inter=200000, seed=0):
    """Cosine distances of (intra same-view, intra cross-view, inter-identity) pairs."""
    d = 1.0 - feats @ feats.T
    iu = np.triu_indices(len(pids), k=1)
    same_id = pids[iu[0]] == pids[iu[1]]
    known = (views[iu[0]] >= 0) & (views[iu[1]] >= 0)
    same_view = views[iu[0]] == views[iu[1]]
    dist = d[iu]
    inter = dist[~same_id]
    if len(inter) > max_inter:
        inter = np.random.default_rng(seed).choice(inter, max_inter, replace=False)
    return dist[same_id & known & same_view], dist[same_id & known & ~same_view], inter


def plot_distances(groups, path, title=""):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(0, 2, 81)
    for values, label in zip(groups, ("same identity, same viewpoint", "same identity, other viewpoint",
                                      "different identities")):
        if len(values):
            ax.hist(values, bins=bins, density=True, alpha=0.5, label=f"{label} (mean {np.mean(values):.2f})")
    ax.set_xlabel("cosine distance")
    ax.set_ylabel("density")
    ax.set_title(title or "pair distances on the test set")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def ranked_lists(feats, pids, cams, paths, num_query, path, num_queries=6, top_k=8, thumb=64, seed=0):
    q, g = feats[:num_query], feats[num_query:]
    dist = 1.0 - q @ g.T
    rng = np.random.default_rng(seed)
    chosen = rng.choice(num_query, size=min(num_queries, num_query), replace=False)
    pad = 4
    canvas = Image.new("RGB", ((top_k + 1) * (thumb + pad) + pad, len(chosen) * (thumb + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for row, qi in enumerate(chosen):
        valid = ~((pids[num_query:] == pids[qi]) & (cams[num_query:] == cams[qi]))  # FastReID's protocol
        order = [j for j in np.argsort(dist[qi]) if valid[j]][:top_k]
        y = pad + row * (thumb + pad)
        canvas.paste(Image.open(paths[qi]).convert("RGB").resize((thumb, thumb)), (pad, y))
        draw.rectangle((pad, y, pad + thumb - 1, y + thumb - 1), outline=(40, 40, 200), width=2)
        for col, j in enumerate(order, start=1):
            x = pad + col * (thumb + pad)
            canvas.paste(Image.open(paths[num_query + j]).convert("RGB").resize((thumb, thumb)), (x, y))
            colour = (0, 170, 0) if pids[num_query + j] == pids[qi] else (210, 0, 0)
            draw.rectangle((x, y, x + thumb - 1, y + thumb - 1), outline=colour, width=3)
    canvas.save(path)


def analyze(cfg, weights, out_dir, dataset_name=None):
    from ..engine.trainer import ViewpointTrainer

    os.makedirs(out_dir, exist_ok=True)
    model = ViewpointTrainer.build_model(cfg)
    Checkpointer(model).load(weights)
    name = dataset_name or cfg.DATASETS.TESTS[0]
    feats, pids, cams, views, paths, nq = extract(cfg, model, name)
    groups = pair_distances(feats, pids, views)
    plot_distances(groups, os.path.join(out_dir, "distances.png"), f"{name}: {os.path.basename(weights)}")
    ranked_lists(feats, pids, cams, paths, nq, os.path.join(out_dir, "ranked_lists.png"))
    return {"intra_same_view": float(np.mean(groups[0])) if len(groups[0]) else float("nan"),
            "intra_cross_view": float(np.mean(groups[1])) if len(groups[1]) else float("nan"),
            "inter": float(np.mean(groups[2]))}
