"""Why a method wins or trails: the paper's own evidence, measured on every run of a comparison.

* pair distances on the test set (Fig. 1): how far one vehicle seen from its two ends is, against
  how close its look-alikes are (:func:`~fastreid_val.experiments.analyze.distance_stats`);
* the mean cosine between an identity's sub-centers over training (``subcenter_cosine``, 1 when the
  reunion has merged them) and the share of samples whose nearest own sub-center is their viewpoint
  (``viewpoint_accuracy``), both logged by the VAL meta-architectures into ``metrics.json``.
"""
import json
import os
from typing import Dict, List, Sequence

import numpy as np

from ..atomic import read_json, write_figure, write_text
from ..engine.launcher import build_config, num_classes_from_checkpoint
from .analyze import analyze, load_pairs, plot_distances
from .report import markdown_table

__all__ = ["TRAINING_SCALARS", "run_analysis", "training_curve", "diagnose"]

TRAINING_SCALARS = ("viewpoint_accuracy", "subcenter_cosine")


def run_analysis(config: str, folder: str, opts: Sequence[str] = ()) -> Dict[str, float]:
    """:func:`analyze` of a finished run's ``model_final.pth``, kept in ``<folder>/analysis``, plus
    the last logged value of each of :data:`TRAINING_SCALARS`."""
    out = os.path.join(folder, "analysis")
    cached = os.path.join(out, "analysis.json")
    if os.path.exists(cached):
        stats = read_json(cached, "analysis")
    else:
        weights = os.path.join(folder, "model_final.pth")
        cfg = build_config(config, [*opts, "MODEL.WEIGHTS", weights, "MODEL.BACKBONE.PRETRAIN", "False",
                                    "OUTPUT_DIR", folder])
        num_classes_from_checkpoint(cfg)
        stats = analyze(cfg, weights, out)
    one_view = build_config(config, list(opts)).MODEL.VAL.NUM_VIEWPOINTS < 2
    for key in TRAINING_SCALARS:
        _, values = training_curve(folder, key)
        if one_view and key == "viewpoint_accuracy":
            continue  # 1 by construction with one sub-center; runs logged before it was left out say so
        if len(values):
            stats[f"final {key}"] = float(values[-1])
    return stats


def training_curve(folder: str, key: str):
    """(iterations, values) of a scalar in ``<folder>/metrics.json`` (FastReID's JSON writer)."""
    its, vals = [], []
    path = os.path.join(folder, "metrics.json")
    if os.path.exists(path):
        with open(path) as f:
            lines = f.read().split("\n")
        for k, line in enumerate(lines):
            try:
                row = json.loads(line) if line.strip() else {}
            except ValueError:
                if k >= len(lines) - 2:  # an append-only log: its last line may be torn by a kill
                    break
                raise
            if key in row:
                its.append(row["iteration"])
                vals.append(row[key])
    return np.array(its), np.array(vals)


def diagnose(folders: Dict[str, List[str]], configs: Dict[str, str], out: str, opts: Sequence[str] = ()) -> str:
    """Analyse every run of ``{method: [run folders]}``, then write ``diagnostics.md`` (mean ± std
    over seeds), ``distances.png`` (first seed of each method) and ``training.png``; returns the table."""
    stats = {}
    for name, runs in folders.items():
        per_seed = [run_analysis(configs[name], folder, opts) for folder in runs]
        keys = list(dict.fromkeys(k for s in per_seed for k in s))
        stats[name] = {}
        for key in keys:
            values = [s[key] for s in per_seed if key in s]
            stats[name][key] = (float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                                len(values))
    columns = list(dict.fromkeys(k for s in stats.values() for k in s))
    table = markdown_table(list(stats.items()), columns=columns)
    write_text(os.path.join(out, "diagnostics.md"), table)
    plot_distances({name: load_pairs(os.path.join(runs[0], "analysis")) for name, runs in folders.items()},
                   os.path.join(out, "distances.png"))
    _plot_training(folders, os.path.join(out, "training.png"))
    return table


def _plot_training(folders, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(TRAINING_SCALARS), figsize=(5.2 * len(TRAINING_SCALARS), 3.6))
    for ax, key in zip(axes, TRAINING_SCALARS):
        for name, runs in folders.items():
            its, values = training_curve(runs[0], key)
            if len(values):
                ax.plot(its, values, label=name)
        ax.set_xlabel("iteration")
        ax.set_title(key.replace("_", " ") + " (first seed)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    write_figure(path, fig)
    plt.close(fig)
