#!/usr/bin/env python
"""Distance histograms (one identity from the same / the other viewpoint, look-alikes, other identities),
how often a look-alike is closer than the same vehicle seen from the other end, and ranked lists.

    python tools/analyze_features.py --config-file configs/SynthVeRi/val_mnv2.yml \\
        --weights output/synthveri/val_mnv2/model_final.pth --out output/analysis/val_mnv2
"""
import argparse
import json
import sys

import fastreid_val  # noqa: F401  (shims and registration)
from fastreid_val.engine.launcher import num_classes_from_checkpoint, build_config
from fastreid_val.engine.user_modules import add_import_argument, import_user_modules
from fastreid_val.errors import UserInputError, one_line
from fastreid_val.experiments.analyze import analyze


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--dataset", default=None, help="test dataset (default: the first of DATASETS.TESTS)")
    add_import_argument(p)
    p.add_argument("opts", nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    try:
        import_user_modules(a.imports)
        cfg = build_config(a.config_file, a.opts + ["MODEL.WEIGHTS", a.weights, "MODEL.BACKBONE.PRETRAIN", "False"])
        num_classes_from_checkpoint(cfg)
        stats = analyze(cfg, a.weights, a.out, a.dataset)
    except UserInputError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(stats, indent=1))
    print(f"written: {a.out}/distances.png, {a.out}/ranked_lists.png, {a.out}/analysis.json")


if __name__ == "__main__":
    main()
