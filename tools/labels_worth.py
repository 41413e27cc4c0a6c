#!/usr/bin/env python
"""What viewpoint labels are worth to VAL on SynthVeRi (docs/STUDY.md): VAL at λ=1 and λ=10 with the true
viewpoints, the labeller's (300 hand labels taken from the truth) and none, beside Softmax and V=1.

    python tools/labels_worth.py --seeds 3 --out output/labels/today      # make compare-labels NAME=today
"""
import argparse
import os
import sys

import fastreid_val  # noqa: F401  (shims and registration)
from fastreid_val.errors import UserInputError, one_line
from fastreid_val.experiments.labels_worth import labels_study
from fastreid_val.experiments.progress import setup_console


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", default="output/labels/today")
    p.add_argument("--opts", nargs="*", default=[], metavar="KEY VALUE", help="config overrides for every run")
    p.add_argument("--verbose", action="store_true", help="show FastReID's full logs live")
    a = p.parse_args(argv)
    if len(a.opts) % 2:
        p.error(f"--opts takes KEY VALUE pairs, got {len(a.opts)} words")
    os.environ.setdefault("FASTREID_DATASETS", "datasets")
    try:
        setup_console(verbose=a.verbose)
        table = labels_study(a.out, a.seeds, a.opts, a.verbose)
    except UserInputError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        sys.exit(2)
    print(table)
    print(f"written: {os.path.join(a.out, 'results.md')}, results.csv, map.png, diagnostics.md, "
          f"labeller/accuracy.json, labeller/viewpoints.contact.png")


if __name__ == "__main__":
    main()
