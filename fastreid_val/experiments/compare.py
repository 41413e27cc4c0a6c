"""Run configs over seeds (reusing finished runs) and tabulate / plot them beside the reference floors.

A run is ``<out>/<config stem>/seed<k>``; a finished run holds ``results.json`` (metrics of each test
set, training time, images/s) and ``cmc.json`` written by the trainer. Each run is its own process
(``python -m fastreid_val.engine.cli``), so runs do not share loggers, RNG state or memory.
"""
import csv
import io
import logging
import os
import re
import sys
from typing import Dict, List, Sequence

import numpy as np

from ..atomic import read_json, write_figure, write_json, write_text
from ..engine.launcher import build_config
from ..errors import RunFailedError, UserInputError  # noqa: F401  (RunFailedError re-exported)
from ..evaluation.floors import reference_floors
from .diagnostics import diagnose
from .progress import run_training
from .report import COLUMNS, markdown_table

logger = logging.getLogger(__name__)

__all__ = ["PRESETS", "PRESET_OPTS", "FACTS", "run_dir", "run_config", "collect", "summarise", "table_rows",
           "write_tables", "plot", "cached_floors", "finished_name", "group_finished", "compare"]

_S = "configs/SynthVeRi/"
TABLE3 = [_S + n for n in ("softmax_mnv2.yml", "lp_wo_mb_mnv2.yml", "lp_mnv2.yml", "val_wo_mb_mnv2.yml",
                           "val_mnv2.yml")]
TABLE1 = [_S + n for n in ("lp_mnv2.yml", "val_lambda0p1_mnv2.yml", "val_mnv2.yml", "val_lambda10_mnv2.yml")]
READINGS = [_S + n for n in ("val_mnv2.yml", "val_ordered_pairs_mnv2.yml", "val_mean_mnv2.yml")]
CONTROLS = [_S + n for n in ("softmax_mnv2.yml", "circle_s64m035_mnv2.yml", "circle_s48m05_mnv2.yml",
                             "cosface_mnv2.yml")]
# Softmax, the CircleSoftmax control (SBS's setting), V=1, L_P, VAL (λ=1), VAL λ=10.
STUDY = [_S + n for n in ("softmax_mnv2.yml", "circle_s64m035_mnv2.yml", "val_v1_mnv2.yml", "lp_mnv2.yml",
                          "val_mnv2.yml", "val_lambda10_mnv2.yml")]
PRESETS = {
    # Everything `make compare` runs on SynthVeRi: Table 3, Table 1's λ sweep and the readings of Eq. 5.
    "synthveri": list(dict.fromkeys(TABLE3 + TABLE1 + READINGS)),
    "synthveri-table3": TABLE3,
    "synthveri-table1": TABLE1,
    "synthveri-val-vs-softmax": [_S + "softmax_mnv2.yml", _S + "val_mnv2.yml"],
    # Where VAL trails: VAL without the partition (V=1), the same pair with twice the schedule, and
    # with the head at 10x the learning rate.
    "synthveri-explanations": [_S + n for n in ("val_v1_mnv2.yml", "softmax_mnv2_long.yml", "val_mnv2_long.yml",
                                                "softmax_mnv2_head_lr10.yml", "val_mnv2_head_lr10.yml")],
    # The study (docs/STUDY.md, "The study fixed before it is run"). The recipe is calibrated on the
    # classifier-family controls alone, no VAL run: the linear softmax against FastReID's CircleSoftmax
    # (SBS's s=64, m=0.35 and VAL's s=48, m=0.5) and CosSoftmax.
    "synthveri-calibration": CONTROLS,
    # The independent check of Eq. 7: FastReID's CircleSoftmax at s=48, m=0.5 against VAL with V=1.
    "synthveri-eq7-check": [_S + "circle_s48m05_mnv2.yml", _S + "val_v1_mnv2.yml"],
    # The study, one preset per generator setting, the same runs on both.
    "synthveri-study-shared-cues": STUDY,
    "synthveri-study-independent-ends": STUDY,
}
# Overrides a preset puts before the user's --opts: the generator setting each preset is measured on.
# The earlier presets name the independent ends explicitly, so that they keep measuring the earlier
# benchmark when configs/Base-SynthVeRi.yml moves to the new default.
_INDEPENDENT = ["DATASETS.SYNTHVERI.SHARED_CUES", "False"]
PRESET_OPTS = {
    **{name: _INDEPENDENT for name in ("synthveri", "synthveri-table3", "synthveri-table1", "synthveri-val-vs-softmax",
                                       "synthveri-explanations", "synthveri-calibration", "synthveri-eq7-check",
                                       "synthveri-study-independent-ends")},
    "synthveri-study-shared-cues": ["DATASETS.SYNTHVERI.SHARED_CUES", "True"],
}
FACTS = ("train_time_s", "images_per_s")


def run_dir(out_root, config, seed):
    return os.path.join(out_root, os.path.splitext(os.path.basename(config))[0], f"seed{seed}")


def run_config(config: str, out: str, seed: int, opts: Sequence[str] = (), reuse: bool = True,
               name: str = "", verbose: bool = False, imports: Sequence[str] = ()) -> str:
    """Train and evaluate ``config`` with ``RUN.SEED seed`` into ``out``, unless ``reuse`` and finished there.

    The training shows as a progress bar named ``name`` (:mod:`.progress`); ``verbose`` shows FastReID's
    console instead. Its full logs are in ``<out>/log.txt``. ``imports``: the user's modules (``--import``).
    """
    if reuse and os.path.exists(os.path.join(out, "results.json")):
        collect(out)  # an empty or cut-short results.json stops here, in one line
        logger.info("  %s: finished earlier, reusing %s", name or out, out)
        return out
    os.makedirs(out, exist_ok=True)
    progress_file = os.path.join(out, "progress.jsonl")
    cmd = [sys.executable, "-m", "fastreid_val.engine.cli", *(w for m in imports for w in ("--import", m)),
           "--config-file", config, *opts,
           "RUN.SEED", str(seed), "OUTPUT_DIR", out, "RUN.PROGRESS_FILE", progress_file]
    logger.debug("running %s", " ".join(cmd))
    code, _ = run_training(cmd, progress_file, name or os.path.basename(os.path.normpath(out)), verbose=verbose)
    if code != 0:
        raise RunFailedError(f"training {config} (seed {seed}) failed; its log: {os.path.join(out, 'log.txt')}")
    return out


def collect(folder: str) -> Dict:
    """``results.json`` and ``cmc.json`` of a finished run: ``{"metrics": {test set: {...}}, "cmc": {...}, facts}``."""
    path = os.path.join(folder, "results.json")
    res = read_json(path, "results")
    if not isinstance(res, dict) or "metrics" not in res:
        raise RunFailedError(f"{path} was written by an earlier version (no per-test-set metrics): rerun it")
    cmc_file = os.path.join(folder, "cmc.json")
    if os.path.exists(cmc_file):
        res["cmc"] = read_json(cmc_file, "CMC")
    return res


def summarise(runs: Dict[str, List[Dict]]) -> Dict[str, Dict[str, Dict[str, tuple]]]:
    """``{method: {test set: {metric: (mean, sample std, runs)}}}`` over seeds (std 0 for one run)."""
    out = {}
    for name, results in runs.items():
        out[name] = {}
        for test_set in results[0]["metrics"]:
            stats = {}
            keys = list(results[0]["metrics"][test_set]) + list(FACTS)
            for key in keys:
                vals = [r["metrics"][test_set].get(key, r.get(key)) for r in results]
                vals = [v for v in vals if isinstance(v, (int, float))]
                if vals:
                    stats[key] = (float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
                                  len(vals))
            out[name][test_set] = stats
    return out


def table_rows(summary, floors=None):
    """Rows for :func:`~fastreid_val.experiments.report.markdown_table`: methods, then floors
    (``{test set: {floor: metrics}}``); labels carry the test set when there are several."""
    sets = list(dict.fromkeys(s for per_set in summary.values() for s in per_set))
    label = (lambda name, s: f"{name} / {s}") if len(sets) > 1 else (lambda name, s: name)
    rows = [(label(name, s), stats) for name, per_set in summary.items() for s, stats in per_set.items()]
    for s, per_floor in (floors or {}).items():
        rows += [(label(f"floor: {f}", s), metrics) for f, metrics in per_floor.items()]
    return rows


def write_tables(summary, folder, floors=None, columns=COLUMNS):
    """``results.md`` (mean ± std over seeds, then floors) and ``results.csv``; returns the Markdown."""
    os.makedirs(folder, exist_ok=True)
    rows = table_rows(summary, floors)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["method", "seeds"] + [f"{m}_{s}" for m in (*columns, *FACTS) for s in ("mean", "std")])
    for name, stats in rows:
        n = max((v[2] for v in stats.values() if isinstance(v, tuple)), default=0)
        cells = []
        for m in (*columns, *FACTS):
            v = stats.get(m)
            cells += ([f"{v[0]:.4f}", f"{v[1]:.4f}"] if isinstance(v, tuple) else
                      [f"{v:.4f}" if isinstance(v, (int, float)) else "", ""])
        w.writerow([name, n] + cells)
    write_text(os.path.join(folder, "results.csv"), buf.getvalue())
    seeds = {label: str(max((v[2] for v in stats.values() if isinstance(v, tuple)), default=0) or "-")
             for label, stats in rows}
    table = markdown_table([((label, seeds[label]), stats) for label, stats in rows],
                           columns=(*columns, *FACTS), first=("method", "seeds"))
    write_text(os.path.join(folder, "results.md"), table)
    return table


def plot(runs: Dict[str, List[Dict]], summary, folder, floors=None):
    """``cmc.png`` (mean CMC of each method on the first test set) and ``map.png`` (mAP and
    cross-view mAP, mean ± std, with the floors as horizontal lines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, results in runs.items():
        cmcs = [next(iter(r["cmc"].values())) for r in results if r.get("cmc")]
        if cmcs:
            k = min(len(c) for c in cmcs)
            ax.plot(np.arange(1, k + 1), np.mean([c[:k] for c in cmcs], axis=0) * 100, label=name)
    ax.set_xlabel("rank")
    ax.set_ylabel("matching rate (%)")
    ax.set_title("CMC (mean over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    write_figure(os.path.join(folder, "cmc.png"), fig)
    plt.close(fig)

    names = list(summary)
    first = {n: next(iter(summary[n].values())) for n in names}
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(names)), 4.2))
    for i, (metric, label) in enumerate((("mAP", "mAP"), ("xview-mAP", "cross-view mAP"))):
        means = [first[n].get(metric, (np.nan, 0, 0))[0] for n in names]
        stds = [first[n].get(metric, (0, 0, 0))[1] for n in names]
        ax.bar(x + (i - 0.5) * 0.38, means, 0.38, yerr=stds, capsize=3, label=label)
    styles = iter(("--", ":", "-."))
    for floor, metrics in (next(iter(floors.values())) if floors else {}).items():
        ax.axhline(metrics["mAP"], color="grey", linestyle=next(styles, "--"), linewidth=1,
                   label=f"floor: {floor} (mAP)")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=25, ha="right", fontsize=7)
    ax.set_ylabel("%")
    ax.legend(fontsize=7)
    ax.set_title("mAP and cross-view mAP (mean ± std over seeds)")
    fig.tight_layout()
    write_figure(os.path.join(folder, "map.png"), fig)
    plt.close(fig)


def cached_floors(config: str, out: str, opts: Sequence[str] = ()) -> Dict:
    """``{test set: {floor: metrics}}`` of ``config``'s test sets, kept in ``<out>/floors.json``."""
    path = os.path.join(out, "floors.json")
    key = {"config": config, "opts": list(opts)}
    if os.path.exists(path):
        cached = read_json(path, "floors")
        if isinstance(cached, dict) and cached.get("key") == key:
            return cached["floors"]
    cfg = build_config(config, list(opts))
    floors = {name: {floor: {k: float(v) for k, v in metrics.items()} for floor, metrics in
                     reference_floors(cfg, name).items()} for name in cfg.DATASETS.TESTS}
    os.makedirs(out, exist_ok=True)
    write_json(path, {"key": key, "floors": floors})
    return floors


def finished_name(folder: str) -> str:
    """The method a finished run folder belongs to: the folder's name, or the name of the folder above
    it for a ``seed<k>`` folder, the layout :func:`run_dir` writes (``<out>/<config>/seed<k>``)."""
    parts = os.path.normpath(os.path.abspath(folder)).split(os.sep)
    return parts[-2] if re.fullmatch(r"seed\d+", parts[-1]) and len(parts) > 1 else parts[-1]


def group_finished(finished: Sequence[str]) -> Dict[str, List[str]]:
    """``{method: [folders]}`` of finished run folders (:func:`finished_name`): the seeds of one method
    summarise together; the same folder given twice, or two folders of one method with the same
    folder name (``a/val/seed0`` and ``b/val/seed0``), are refused, never counted twice."""
    groups: Dict[str, List[str]] = {}
    for folder in finished:
        fs = groups.setdefault(finished_name(folder), [])
        base = os.path.basename(os.path.normpath(folder))
        same = [f for f in fs if os.path.basename(os.path.normpath(f)) == base]  # the same folder twice, too
        if same:
            raise UserInputError(f"{folder} and {same[0]} would be counted as two seeds of one method "
                                 f"({finished_name(folder)!r}): give each run once, and one method's seeds as "
                                 f"<method>/seed<k> folders")
        fs.append(folder)
    return groups


def compare(configs: Sequence[str], seeds: int, out: str, opts: Sequence[str] = (), finished: Sequence[str] = (),
            floors: bool = True, diagnostics: bool = True, verbose: bool = False, imports: Sequence[str] = ()):
    """Run every config for seeds ``0..seeds-1`` (seed-major: an interrupted comparison has every method
    at the same number of seeds, and a rerun goes on where it stopped), add ``finished`` run folders,
    then write the tables and plots into ``out`` (and the :func:`diagnose` files of the runs).
    One console line per stage and a progress bar per training (``verbose``: FastReID's console).
    Returns the Markdown table."""
    folders, by_name = {}, {}
    total, k = seeds * len(configs), 0
    for seed in range(seeds):
        for config in configs:
            name = os.path.splitext(os.path.basename(config))[0]
            by_name[name] = config
            folder = run_dir(out, config, seed)
            k += 1
            logger.info("==> [%d/%d] %s, seed %d: %s -> %s", k, total, name, seed, config, folder)
            folders.setdefault(name, []).append(run_config(config, folder, seed, opts, name=f"{name} seed {seed}",
                                                           verbose=verbose, imports=imports))
    runs = {name: [collect(f) for f in fs] for name, fs in folders.items()}
    for name, fs in group_finished(finished).items():
        if name in runs:
            raise UserInputError(f"the finished runs {', '.join(fs)} are named {name!r}, as a config of this "
                                 f"comparison is; give them with --runs only, or move them")
        runs[name] = [collect(f) for f in fs]
    reference = None
    if floors and configs:
        logger.info("==> reference floors of %s's test sets (no learning at all)", configs[0])
        reference = cached_floors(configs[0], out, opts)
    summary = summarise(runs)
    table = write_tables(summary, out, reference)
    plot(runs, summary, out, reference)
    if diagnostics and folders:
        logger.info("==> diagnostics: pair distances and sub-centers of every run")
        diagnose(folders, by_name, out, opts)
    return table
