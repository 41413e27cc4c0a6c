"""Feature analysis of a trained model: the paper's Fig. 1 as a measurement, and ranked lists.

* ``distances.png``: histograms of cosine distance for intra-identity pairs seen from the same
  viewpoint, intra-identity pairs across viewpoints, and inter-identity pairs (test set).
* ``ranked_lists.png``: a few queries with their top-k gallery images (green: same identity);
  :func:`draw_ranked_lists` also draws the results of ``tools/search.py``.
"""
import logging
import os

import numpy as np
import torch
import torch.nn.functional as F
from fastreid.evaluation.evaluator import inference_context
from fastreid.utils.checkpoint import Checkpointer
from PIL import Image, ImageDraw

from ..engine.checkpoint import atomic_write

logger = logging.getLogger(__name__)

__all__ = ["extract", "pair_distances", "plot_distances", "ranked_lists", "draw_ranked_lists"]


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
    rows = []
    for qi in chosen:
        valid = ~((pids[num_query:] == pids[qi]) & (cams[num_query:] == cams[qi]))  # FastReID's protocol
        order = [j for j in np.argsort(dist[qi]) if valid[j]][:top_k]
        rows.append((paths[qi], [(paths[num_query + j], bool(pids[num_query + j] == pids[qi]), None) for j in order]))
    draw_ranked_lists(rows, path, thumb=thumb)


QUERY_FRAME, MATCH_FRAME, OTHER_FRAME, UNKNOWN_FRAME = (40, 40, 200), (0, 170, 0), (210, 0, 0), (150, 150, 150)


def draw_ranked_lists(rows, path, thumb=64, pad=4):
    """One row per query: the query (blue frame), then its ranked gallery images.

    Args:
        rows: ``[(query_path, [(gallery_path, match, caption), ...]), ...]``; ``match`` True (green
            frame: same identity), False (red) or None (grey: identity unknown); ``caption`` a short
            text drawn under the image, or None.
        path: the PNG to write (written whole or not at all).
    """
    top_k = max((len(ranked) for _, ranked in rows), default=0)
    text_h = 12 if any(c for _, ranked in rows for _, _, c in ranked) else 0
    row_h = thumb + text_h + pad
    canvas = Image.new("RGB", ((top_k + 1) * (thumb + pad) + pad, len(rows) * row_h + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for row, (query, ranked) in enumerate(rows):
        y = pad + row * row_h
        canvas.paste(_thumbnail(query, thumb), (pad, y))
        draw.rectangle((pad, y, pad + thumb - 1, y + thumb - 1), outline=QUERY_FRAME, width=2)
        if text_h:
            draw.text((pad + 2, y + thumb), "query", fill=(0, 0, 0))
        for col, (image, match, caption) in enumerate(ranked, start=1):
            x = pad + col * (thumb + pad)
            canvas.paste(_thumbnail(image, thumb), (x, y))
            colour = UNKNOWN_FRAME if match is None else MATCH_FRAME if match else OTHER_FRAME
            draw.rectangle((x, y, x + thumb - 1, y + thumb - 1), outline=colour, width=3)
            if caption:
                draw.text((x + 2, y + thumb), caption, fill=(0, 0, 0))
    atomic_write(path, lambda f: canvas.save(f, format="PNG", optimize=True))


def _thumbnail(path, size):
    return Image.open(path).convert("RGB").resize((size, size))


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
