#!/usr/bin/env python
"""Compare methods: run what has not run, then write results.md/.csv, cmc.png and map.png, with the
reference floors (random features, raw pixels, look-alike oracle) of the first config's test sets.

    python tools/compare.py --preset synthveri --seeds 3                         # make compare
    python tools/compare.py --preset synthveri-calibration --seeds 3 --out output/calibration/today  # the study's calibration
    python tools/compare.py --configs configs/VeRi/softmax_r50.yml configs/VeRi/val_r50.yml --seeds 1 \\
        --opts MODEL.BACKBONE.PRETRAIN_PATH /path/to/resnet50.pth               # overrides for every run
    python tools/compare.py --runs output/veri/val_r50 output/veri/softmax_r50   # finished folders only
    python tools/compare.py --runs output/study/x/val_mnv2/seed*   # a <method>/seed<k> folder counts as a seed of <method>
"""
import argparse
import os
import sys

import fastreid_val  # noqa: F401  (shims and registration)
from fastreid_val.engine.user_modules import add_import_argument, import_user_modules
from fastreid_val.errors import UserInputError, one_line
from fastreid_val.experiments.compare import PRESET_OPTS, PRESETS, compare
from fastreid_val.experiments.progress import setup_console


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS))
    p.add_argument("--configs", nargs="*", default=[])
    p.add_argument("--runs", nargs="*", default=[], help="finished output folders (with results.json); <method>/seed<k> folders are seeds of <method>")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", default="output/compare")
    p.add_argument("--opts", nargs="*", default=[], metavar="KEY VALUE",
                   help="config overrides for every run, after the preset's own (its SynthVeRi setting)")
    p.add_argument("--no-floors", action="store_true", help="leave out the reference floors")
    p.add_argument("--no-diagnostics", action="store_true",
                   help="leave out the pair-distance and sub-center diagnostics (diagnostics.md, distances.png, "
                        "training.png)")
    p.add_argument("--verbose", action="store_true",
                   help="show FastReID's full logs live (they are always in each run's log.txt)")
    add_import_argument(p)  # also given to each training
    a = p.parse_args(argv)
    if len(a.opts) % 2:
        p.error(f"--opts takes KEY VALUE pairs, got {len(a.opts)} words")
    configs = list(dict.fromkeys(list(PRESETS[a.preset] if a.preset else []) + a.configs))  # each once
    stems = [os.path.splitext(os.path.basename(c))[0] for c in configs]
    clash = sorted({s for s in stems if stems.count(s) > 1})
    if clash:
        p.error(f"configs with the same file name would share an output folder: {', '.join(clash)}")
    if not configs and not a.runs:
        p.error("give --preset, --configs or --runs")
    try:
        import_user_modules(a.imports)
        setup_console(verbose=a.verbose)
        opts = list(PRESET_OPTS.get(a.preset, [])) + a.opts
        table = compare(configs, a.seeds, a.out, opts, a.runs, floors=not a.no_floors,
                        diagnostics=not a.no_diagnostics, verbose=a.verbose, imports=a.imports)
    except UserInputError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        sys.exit(2)
    print(table)
    print(f"written: {os.path.join(a.out, 'results.md')}, results.csv, cmc.png, map.png"
          + ("" if a.no_diagnostics else ", diagnostics.md, distances.png, training.png"))


if __name__ == "__main__":
    main()
