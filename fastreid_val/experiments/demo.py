"""The main job: on the embedded SynthVeRi, the reference floors, then the stock Softmax baseline and
VAL fine-tuned from the same ImageNet weights with the same recipe, in one table.

Each training is its own process (:func:`fastreid_val.experiments.compare.run_config`), seeded
(``RUN.SEED``). The demo trains the recipe as the study fixed it (900 iterations, 18 epochs of 50), so
its rows are seed 0 of the study's shared-cues rows (``make compare-study``) on the machine it runs on;
``--opts`` overrides the configs for both trainings. The console shows one line per stage, a progress
bar per training, the floors and the table; FastReID's logs are in each run's ``log.txt`` (``verbose``:
on the console too).
"""
import argparse
import logging
import os
import time

from ..atomic import write_text
from ..engine.environment import describe
from .compare import cached_floors, collect, run_config, summarise, table_rows
from .report import COLUMNS, markdown_table

logger = logging.getLogger(__name__)

__all__ = ["DEMO_CONFIGS", "run_demo", "parse_args"]

DEMO_CONFIGS = (("Softmax", "configs/SynthVeRi/softmax_mnv2.yml"), ("VAL", "configs/SynthVeRi/val_mnv2.yml"))
CAPTION = ("SynthVeRi test set (metrics in %, re-ranked; sview/xview: only matches seen from the query's own / the "
           "other viewpoint; lookalike-wrong-Rank-1: share of wrong first matches of the query's model and colour):")


def run_demo(seed=0, out="output/synthveri", opts=(), verbose=False):
    """Floors, both trainings and the table; returns the Markdown table. ``opts`` override the configs,
    for both trainings."""
    opts = list(opts)
    os.environ.setdefault("FASTREID_DATASETS", "datasets")
    start = time.perf_counter()
    steps = len(DEMO_CONFIGS) + 1
    logger.info("==> [1/%d] SynthVeRi (generated on first use) and its reference floors: no learning at all", steps)
    floors = cached_floors(DEMO_CONFIGS[0][1], out, opts)
    runs, folders = {}, {}
    for i, (name, config) in enumerate(DEMO_CONFIGS, start=2):
        folder = os.path.join(out, os.path.splitext(os.path.basename(config))[0])
        eta = ""
        if i > 2:
            per_run = (time.perf_counter() - start) / (i - 2)  # floors included: an upper bound
            eta = f"; about {per_run * (steps - i + 1) / 60:.1f} min left"
        logger.info("==> [%d/%d] %s: fine-tune %s (seed %d) -> %s%s", i, steps, name, config, seed, folder, eta)
        folders[name] = run_config(config, folder, seed, opts, reuse=False, name=name, verbose=verbose)
        runs[name] = [collect(folders[name])]
    wall = time.perf_counter() - start
    table = markdown_table(table_rows(summarise(runs), floors), columns=(*COLUMNS, "train_time_s"))
    write_text(os.path.join(out, "demo.md"), table)
    logger.info("\n%s\n\n%s", CAPTION, table)
    env = next(iter(runs.values()))[0].get("environment")
    logger.info("wall time: %.0f s (%.1f min)%s", wall, wall / 60, f" on {describe(env)}" if env else "")
    for name, folder in folders.items():
        logger.info("%s: checkpoint %s, log %s", name, os.path.join(folder, "model_final.pth"),
                    os.path.join(folder, "log.txt"))
    logger.info("TensorBoard: tensorboard --logdir %s; the table: %s", out, os.path.join(out, "demo.md"))
    return table


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="The main job: floors, Softmax and VAL on SynthVeRi, one table.")
    p.add_argument("--seed", type=int, default=0, help="RUN.SEED of both trainings")
    p.add_argument("--out", default="output/synthveri", help="folder of the runs, the floors and the table")
    p.add_argument("--opts", nargs="*", default=[], metavar="KEY VALUE", 
                   help="config overrides for both runs (none: the study's recipe, seed 0 of its rows)")
    p.add_argument("--verbose", action="store_true",
                   help="show FastReID's full logs live (they are always in each run's log.txt)")
    return p.parse_args(argv)
