#!/usr/bin/env python
"""Compare methods: run what has not run, then write results.md/.csv, cmc.png and map.png.

    python tools/compare.py --preset synthveri-val-vs-baseline --seeds 3
    python tools/compare.py --configs configs/SynthVeRi/val_osnet.yml configs/SynthVeRi/lp_osnet.yml --seeds 1
    python tools/compare.py --runs output/veri/val_r50 output/veri/softmax_r50     # finished folders only
"""
import argparse
import logging
import os

import fastreid_val  # noqa: F401  (shims and registration)
from fastreid_val.experiments.compare import PRESETS, collect, plot, run_config, summarise, write_table


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS))
    p.add_argument("--configs", nargs="*", default=[])
    p.add_argument("--runs", nargs="*", default=[], help="finished output folders (with results.json)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", default="output/compare")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides for every run")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    configs = list(dict.fromkeys(list(PRESETS[a.preset] if a.preset else []) + a.configs))  # each once
    stems = [os.path.splitext(os.path.basename(c))[0] for c in configs]
    clash = sorted({s for s in stems if stems.count(s) > 1})
    if clash:
        p.error(f"configs with the same file name would share an output folder: {', '.join(clash)}")
    if not configs and not a.runs:
        p.error("give --preset, --configs or --runs")
    # Seed-major: an interrupted comparison has every method at the same number of seeds; rerunning
    # the command goes on where it stopped (finished runs are reused).
    folders = {}
    for seed in range(a.seeds):
        for config in configs:
            name = os.path.splitext(os.path.basename(config))[0]
            folders.setdefault(name, []).append(run_config(config, seed, a.out, a.opts))
    runs = {name: [collect(f) for f in fs] for name, fs in folders.items()}
    for folder in a.runs:
        runs[os.path.basename(os.path.normpath(folder))] = [collect(folder)]
    summary = summarise(runs)
    print(write_table(summary, a.out))
    plot(runs, summary, a.out)
    print(f"written: {os.path.join(a.out, 'results.md')}, results.csv, cmc.png, map.png")


if __name__ == "__main__":
    main()
