"""What viewpoint labels are worth to VAL, on SynthVeRi with the study's recipe (docs/STUDY.md, "What the
viewpoint labels are worth"): VAL at λ=1 and λ=10 with (a) the true viewpoints, (b) the labeller's, trained
on 300 hand labels whose viewpoints are taken from the truth, so that what is measured is the labeller's
own error, and (c) none at all (every training image goes to its identity's nearest sub-center), beside
the stock Softmax baseline and VAL with V=1, which need no labels.

Layout of ``out``: ``labeller/`` (the hand labels, the labels, their confusion matrix and contact sheet,
``accuracy.json``), then ``<variant>/seed<k>`` runs, ``results.md``/``.csv``, the plots and diagnostics
as :func:`~fastreid_val.experiments.compare.compare` writes them.
"""
import csv
import io
import json
import logging
import os
from typing import Dict, Sequence

import numpy as np

from ..annotate.select import dataset_items, spread_sample
from ..atomic import atomic_write, read_json
from ..labeller import LabellerSettings, run as run_labeller
from ..labeller.report import confusion_matrix, format_confusion
from .compare import cached_floors, collect, plot, run_config, summarise, write_tables
from .diagnostics import diagnose

logger = logging.getLogger(__name__)

__all__ = ["SETTING", "HAND_LABELS", "VARIANTS", "variant_opts", "truth_agreement", "prepare_labels", "run_variant",
           "labels_study"]

_S = "configs/SynthVeRi/"
# The study's shared-cues preset (compare.PRESET_OPTS["synthveri-study-shared-cues"]): the generator's default.
SETTING = ("DATASETS.SYNTHVERI.SHARED_CUES", "True")
HAND_LABELS = 300  # the paper's number (Sec. 3.1)
# (run name, config, training viewpoints): None = the config as it is (it needs no viewpoint),
# "truth" = the dataset's annotation, "labeller" = the labeller's file, "none" = every viewpoint unknown.
VARIANTS = (
    ("softmax_mnv2", _S + "softmax_mnv2.yml", None),
    ("val_v1_mnv2", _S + "val_v1_mnv2.yml", None),
    ("val_mnv2-truth", _S + "val_mnv2.yml", "truth"),
    ("val_mnv2-labeller", _S + "val_mnv2.yml", "labeller"),
    ("val_mnv2-none", _S + "val_mnv2.yml", "none"),
    ("val_lambda10_mnv2-truth", _S + "val_lambda10_mnv2.yml", "truth"),
    ("val_lambda10_mnv2-labeller", _S + "val_lambda10_mnv2.yml", "labeller"),
    ("val_lambda10_mnv2-none", _S + "val_lambda10_mnv2.yml", "none"),
)


def variant_opts(source, labels_file: str):
    """The config overrides of a variant's training viewpoints (``DATASETS.VIEWPOINT.TRAIN_LABELS``)."""
    if source in (None, "truth"):
        return []
    return ["DATASETS.VIEWPOINT.TRAIN_LABELS", labels_file if source == "labeller" else "unknown"]


def _write_csv(path, header, rows):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    atomic_write(path, lambda f: f.write(buf.getvalue().encode()))


def truth_agreement(folder: str, items, num_viewpoints: int = 2) -> Dict:
    """The labels in ``folder`` (``viewpoints.txt``) against the true viewpoints of the training ``items``: on
    every training image, and on those that are not among the hand labels (``hand_labels.csv``), which the
    labeller never saw."""
    by_id = {os.path.splitext(os.path.basename(it[0]))[0]: it[3] for it in items}
    with open(os.path.join(folder, "viewpoints.txt")) as f:
        given = {line.split()[0]: int(line.split()[1]) for line in f if line.strip()}
    with open(os.path.join(folder, "hand_labels.csv")) as f:
        hand = {os.path.splitext(os.path.basename(row[0]))[0] for row in list(csv.reader(f))[1:]}
    out = {}
    for key, ids in (("truth", sorted(by_id)), ("unseen", sorted(set(by_id) - hand))):
        m = confusion_matrix([by_id[i] for i in ids], [given[i] for i in ids], num_viewpoints)
        out.update({f"{key}_images": len(ids), f"{key}_accuracy": float(m.trace() / m.sum()),
                    f"{key}_confusion": m.tolist()})
    return out


def prepare_labels(folder: str, opts: Sequence[str] = (), n: int = HAND_LABELS, seed: int = 0,
                   settings: LabellerSettings = None) -> Dict:
    """The labeller's labels of every SynthVeRi training image, from ``n`` hand labels picked as
    ``tools/annotate_viewpoints.py`` picks them (seed ``seed``) and answered with the true viewpoint.
    Writes ``hand_labels.csv``, ``train_images.txt``, ``viewpoints.txt`` (with its confusion matrix and
    contact sheet) and ``accuracy.json`` into ``folder``; labels already there are reused.
    Returns the accuracies: held out (on the hand labels) and against the truth (:func:`truth_agreement`)."""
    summary_file = os.path.join(folder, "accuracy.json")
    labels_file = os.path.join(folder, "viewpoints.txt")
    items = dataset_items("SynthVeRi", opts)
    if os.path.exists(summary_file) and os.path.exists(labels_file):
        summary = read_json(summary_file, "labels summary")
    else:
        os.makedirs(folder, exist_ok=True)
        truth = {os.path.abspath(it[0]): it[3] for it in items}
        picked = [os.path.abspath(p) for p in spread_sample(items, n, seed)]
        hand = os.path.join(folder, "hand_labels.csv")
        _write_csv(hand, ["path", "viewpoint"], [(p, truth[p]) for p in picked])
        images = os.path.join(folder, "train_images.txt")
        atomic_write(images, lambda f: f.write("".join(f"{p}\n" for p in sorted(truth)).encode()))
        result = run_labeller(hand, images, labels_file, settings or LabellerSettings(), min_accuracy=0.0)
        chosen = set(picked)
        summary = {"hand_labels": len(picked),
                   "identities": len({it[1] for it in items if os.path.abspath(it[0]) in chosen}),
                   "cameras": len({it[2] for it in items if os.path.abspath(it[0]) in chosen}),
                   "held_out_images": len(result.held_out.truth), "held_out_accuracy": result.accuracy,
                   "held_out_confusion": result.confusion.tolist()}
    summary.update(truth_agreement(folder, items, len(summary["held_out_confusion"])))
    logger.info("labeller: held-out accuracy %.4f (%d images); against the truth %.4f on all %d training images, "
                "%.4f on the %d that are not hand labels\n%s", summary["held_out_accuracy"],
                summary["held_out_images"], summary["truth_accuracy"], summary["truth_images"],
                summary["unseen_accuracy"], summary["unseen_images"],
                format_confusion(np.array(summary["truth_confusion"])).replace("held-out hand labels", "the truth"))
    atomic_write(summary_file, lambda f: f.write(json.dumps(summary, indent=1).encode()))
    return summary


def run_variant(out: str, name: str, seed: int, user_opts: Sequence[str] = (), verbose: bool = False) -> str:
    """Train and evaluate one variant (a name of :data:`VARIANTS`) with seed ``seed`` into
    ``<out>/<name>/seed<seed>``, unless it has finished there (``user_opts`` as :func:`labels_study`'s)."""
    _, config, source = next(v for v in VARIANTS if v[0] == name)
    labels_file = os.path.join(out, "labeller", "viewpoints.txt")
    if source == "labeller" and not os.path.isfile(labels_file):
        prepare_labels(os.path.join(out, "labeller"), [*SETTING, *user_opts])
    folder = os.path.join(out, name, f"seed{seed}")
    return run_config(config, folder, seed, [*SETTING, *user_opts, *variant_opts(source, labels_file)],
                      name=f"{name} seed {seed}", verbose=verbose)


def labels_study(out: str, seeds: int = 3, user_opts: Sequence[str] = (), verbose: bool = False) -> str:
    """The labels first, then every variant for seeds ``0..seeds-1`` (seed-major, finished runs reused),
    then the tables, plots and diagnostics; returns the Markdown table. ``user_opts`` override the configs
    (after :data:`SETTING`) in every run."""
    opts = [*SETTING, *user_opts]
    logger.info("==> labeller: %d hand labels from the truth, then every training image", HAND_LABELS)
    accuracy = prepare_labels(os.path.join(out, "labeller"), opts)
    folders = {}
    for seed in range(seeds):
        for k, (name, config, _) in enumerate(VARIANTS, 1):
            logger.info("==> seed %d, [%d/%d] %s", seed, k, len(VARIANTS), name)
            folders.setdefault(name, []).append(run_variant(out, name, seed, user_opts, verbose))
    runs = {name: [collect(f) for f in fs] for name, fs in folders.items()}
    floors = cached_floors(VARIANTS[0][1], out, opts)
    summary = summarise(runs)
    table = write_tables(summary, out, floors)
    plot(runs, summary, out, floors)
    diagnose(folders, {name: config for name, config, _ in VARIANTS}, out, opts)
    logger.info("labeller: held-out accuracy %.4f on %d images; against the truth %.4f on all %d training images, "
                "%.4f on the %d that are not hand labels", accuracy["held_out_accuracy"], accuracy["held_out_images"],
                accuracy["truth_accuracy"], accuracy["truth_images"], accuracy["unseen_accuracy"],
                accuracy["unseen_images"])
    return table
