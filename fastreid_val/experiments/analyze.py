"""Feature analysis of a trained model: the paper's Fig. 1 as a measurement, and ranked lists.

* ``distances.png``: histograms of cosine distance on the test set for pairs of one identity seen
  from the same viewpoint and from the other one, pairs of look-alikes (other identities of the same
  model and colour, where the dataset knows them) and other pairs.
* ``analysis.json``: mean distances, and how often a look-alike pair is closer than a pair of one
  identity across viewpoints (the "intra > inter" failure the paper sets out to fix).
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

from ..atomic import atomic_write, write_figure, write_json
from ..evaluation.cross_view import stock_mask

logger = logging.getLogger(__name__)

__all__ = ["PAIRS", "extract", "pair_distances", "closer_share", "distance_stats", "plot_distances", "ranked_lists",
           "draw_ranked_lists", "analyze", "load_pairs"]


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
    return cat(feats), cat(pids), cat(cams), cat(views), paths, num_query, loader.dataset.identity_groups


PAIRS = ("same identity, same viewpoint", "same identity, other viewpoint",
         "look-alikes: other identity, same model and colour", "other identities")


def pair_distances(feats, pids, views, groups=None, max_pairs=200000, seed=0):
    """Cosine distances of test-image pairs by kind (:data:`PAIRS`), as in the paper's Fig. 1.

    Args:
        feats: [M, d] L2-normalised features. pids, views: [M] identities and viewpoints (-1 unknown).
        groups: {identity: look-alike group} or None (then no look-alike kind; every other identity
            counts under "other identities").
        max_pairs: kinds with more pairs are subsampled (seeded).
    Returns:
        {kind: 1-D array of distances}.
    """
    i, j = np.triu_indices(len(pids), k=1)
    # From the [M, M] Gram matrix: gathering both rows of every pair would take 2 x M²/2 x d floats
    # (20 GB for SynthVeRi's 2,000 test images at d=1280).
    dist = 1.0 - (feats @ feats.T)[i, j]
    same_id = pids[i] == pids[j]
    known = (views[i] >= 0) & (views[j] >= 0)
    same_view = views[i] == views[j]
    if groups:
        g = np.array([groups[int(p)] for p in pids])
        lookalike = ~same_id & (g[i] == g[j])
    else:
        lookalike = np.zeros_like(same_id)
    masks = dict(zip(PAIRS, (same_id & known & same_view, same_id & known & ~same_view, lookalike,
                             ~same_id & ~lookalike)))
    rng = np.random.default_rng(seed)
    out = {}
    for kind, mask in masks.items():
        values = dist[mask]
        if len(values) > max_pairs:
            values = rng.choice(values, max_pairs, replace=False)
        if kind != PAIRS[2] or groups:
            out[kind] = values
    return out


def closer_share(far, near):
    """P(a random ``near`` distance < a random ``far`` distance): e.g. how often a look-alike pair is
    closer than a pair of one vehicle seen from both ends (0: never, 0.5: indistinguishable)."""
    if not len(far) or not len(near):
        return float("nan")
    near = np.sort(near)
    return float(np.searchsorted(near, far, side="left").sum() / (len(far) * len(near)))


def distance_stats(pairs):
    """Mean distance of each kind, and how often a look-alike pair (or any other identity) is closer
    than a pair of one identity across viewpoints: the paper's "intra > inter" failure."""
    stats = {f"mean distance: {kind}": float(np.mean(v)) if len(v) else float("nan") for kind, v in pairs.items()}
    cross = pairs[PAIRS[1]]
    for kind, label in ((PAIRS[2], "look-alike closer than same identity across viewpoints"),
                        (PAIRS[3], "other identity closer than same identity across viewpoints")):
        if kind in pairs:
            stats[label] = closer_share(cross, pairs[kind])
    return stats


def plot_distances(panels, path, bins=np.linspace(0, 2, 81)):
    """Histograms of :func:`pair_distances`, one panel per ``{title: pairs}`` entry, shared axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.4 * rows), sharex=True, sharey=True, squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (title, pairs) in zip(axes.flat, panels.items()):
        for kind, values in pairs.items():
            if len(values):
                ax.hist(values, bins=bins, density=True, histtype="step", linewidth=1.5,
                        label=f"{kind} ({np.mean(values):.2f})")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("cosine distance")
        ax.set_ylabel("density")
        ax.legend(fontsize=6)
    fig.tight_layout()
    write_figure(path, fig)
    plt.close(fig)


def ranked_lists(feats, pids, cams, paths, num_query, path, num_queries=6, top_k=8, thumb=64, seed=0):
    q, g = feats[:num_query], feats[num_query:]
    dist = 1.0 - q @ g.T
    rng = np.random.default_rng(seed)
    chosen = rng.choice(num_query, size=min(num_queries, num_query), replace=False)
    rows = []
    for qi in chosen:
        valid = stock_mask(pids[qi:qi + 1], pids[num_query:], cams[qi:qi + 1], cams[num_query:])[0]
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


def load_pairs(out_dir):
    """The pair distances :func:`analyze` kept in ``out_dir``."""
    with np.load(os.path.join(out_dir, "pairs.npz")) as data:
        return {k: data[f"kind{i}"] for i, k in enumerate(PAIRS) if len(data[f"kind{i}"])}


def analyze(cfg, weights, out_dir, dataset_name=None):
    """Features of ``weights`` on a test set: ``distances.png``, ``ranked_lists.png``, the pair
    distances (``pairs.npz``) and the :func:`distance_stats`, returned and written to ``analysis.json``."""
    from ..engine.trainer import ViewpointTrainer

    os.makedirs(out_dir, exist_ok=True)
    model = ViewpointTrainer.build_model(cfg)
    Checkpointer(model).load(weights)
    name = dataset_name or cfg.DATASETS.TESTS[0]
    feats, pids, cams, views, paths, nq, groups = extract(cfg, model, name)
    pairs = pair_distances(feats, pids, views, groups)
    plot_distances({f"{name}: {os.path.basename(weights)}": pairs}, os.path.join(out_dir, "distances.png"))
    ranked_lists(feats, pids, cams, paths, nq, os.path.join(out_dir, "ranked_lists.png"))
    np.savez_compressed(os.path.join(out_dir, "pairs.npz"), **{f"kind{i}": pairs.get(k, np.zeros(0))
                                                               for i, k in enumerate(PAIRS)})
    stats = distance_stats(pairs)
    write_json(os.path.join(out_dir, "analysis.json"), stats)
    return stats
