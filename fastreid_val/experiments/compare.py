"""Run configs over seeds (skipping finished runs) and tabulate / plot their results side by side.

A run is ``<out>/<config stem>/seed<k>``; finished runs hold ``results.json`` (metrics, training time,
images/s) and ``cmc.json`` written by the trainer and evaluator.
"""
import csv
import json
import logging
import os
import subprocess
import sys
from typing import Dict, List, Sequence

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["PRESETS", "run_config", "collect", "summarise", "write_table", "plot"]

PRESETS = {
    # Table 3 of the paper, on SynthVeRi, with the main job's recipe.
    "synthveri-table3": ["configs/SynthVeRi/baseline_osnet.yml", "configs/SynthVeRi/lp_wo_mb_osnet.yml",
                         "configs/SynthVeRi/lp_osnet.yml", "configs/SynthVeRi/val_wo_mb_osnet.yml",
                         "configs/SynthVeRi/val_osnet.yml"],
    "synthveri-val-vs-baseline": ["configs/SynthVeRi/baseline_osnet.yml", "configs/SynthVeRi/val_osnet.yml"],
}
METRICS = ("Rank-1", "Rank-5", "Rank-10", "mAP", "mINP", "xview-Rank-1", "xview-mAP", "train_time_s", "images_per_s")


def run_dir(out_root, config, seed):
    return os.path.join(out_root, os.path.splitext(os.path.basename(config))[0], f"seed{seed}")


def run_config(config: str, seed: int, out_root: str, opts: Sequence[str] = ()) -> str:
    """Train and evaluate one (config, seed) unless ``results.json`` is already there."""
    out = run_dir(out_root, config, seed)
    if os.path.exists(os.path.join(out, "results.json")):
        logger.info("%s: finished earlier, reusing", out)
        return out
    cmd = [sys.executable, os.path.join(os.path.dirname(__file__), "..", "..", "tools", "train_net.py"),
           "--config-file", config, *opts, "RUN.SEED", str(seed), "OUTPUT_DIR", out]
    logger.info("running %s", " ".join(cmd))
    subprocess.run(cmd, check=True)
    return out


def collect(folder: str) -> Dict:
    with open(os.path.join(folder, "results.json")) as f:
        res = json.load(f)
    cmc_file = os.path.join(folder, "cmc.json")
    if os.path.exists(cmc_file):
        with open(cmc_file) as f:
            res["cmc"] = json.load(f)["cmc"]
    return res


def summarise(runs: Dict[str, List[Dict]]) -> Dict[str, Dict[str, tuple]]:
    """{name: {metric: (mean, std, n)}} over seeds (std with ddof=1; 0 for one seed)."""
    out = {}
    for name, results in runs.items():
        out[name] = {}
        for m in METRICS:
            vals = [r[m] for r in results if m in r]
            if vals:
                out[name][m] = (float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0, len(vals))
    return out


def write_table(summary, folder):
    os.makedirs(folder, exist_ok=True)
    header = ["method", "seeds"] + list(METRICS)
    with open(os.path.join(folder, "results.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["method", "seeds"] + [f"{m}_{s}" for m in METRICS for s in ("mean", "std")])
        for name, stats in summary.items():
            n = max((v[2] for v in stats.values()), default=0)
            w.writerow([name, n] + [f"{stats[m][i]:.4f}" if m in stats else "" for m in METRICS for i in (0, 1)])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, stats in summary.items():
        n = max((v[2] for v in stats.values()), default=0)
        cells = [f"{stats[m][0]:.2f} ± {stats[m][1]:.2f}" if m in stats else "-" for m in METRICS]
        lines.append(f"| {name} | {n} | " + " | ".join(cells) + " |")
    table = "\n".join(lines) + "\n"
    with open(os.path.join(folder, "results.md"), "w") as f:
        f.write(table)
    return table


def plot(runs: Dict[str, List[Dict]], summary, folder):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, results in runs.items():
        cmcs = [r["cmc"] for r in results if "cmc" in r]
        if cmcs:
            k = min(len(c) for c in cmcs)
            mean = np.mean([c[:k] for c in cmcs], axis=0) * 100
            ax.plot(np.arange(1, k + 1), mean, label=name)
    ax.set_xlabel("rank")
    ax.set_ylabel("matching rate (%)")
    ax.set_title("CMC (mean over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(folder, "cmc.png"), dpi=120)
    plt.close(fig)

    names = list(summary)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(5, 1.4 * len(names)), 4))
    for i, (metric, label) in enumerate((("mAP", "mAP"), ("xview-mAP", "cross-view mAP"))):
        means = [summary[n].get(metric, (np.nan, 0, 0))[0] for n in names]
        stds = [summary[n].get(metric, (0, 0, 0))[1] for n in names]
        ax.bar(x + (i - 0.5) * 0.38, means, 0.38, yerr=stds, capsize=3, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("%")
    ax.legend()
    ax.set_title("mAP and cross-view mAP (mean ± std over seeds)")
    fig.tight_layout()
    fig.savefig(os.path.join(folder, "map.png"), dpi=120)
    plt.close(fig)
