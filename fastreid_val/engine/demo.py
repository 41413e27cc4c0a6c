"""The main job: train and evaluate VAL on the embedded SynthVeRi, then print a results table."""
import argparse
import logging
import os
import time

from fastreid.engine import default_argument_parser

from .launcher import main

__all__ = ["run_demo", "format_results"]

COLUMNS = ("Rank-1", "Rank-5", "Rank-10", "mAP", "mINP", "xview-Rank-1", "xview-mAP", "sview-Rank-1", "sview-mAP")


def format_results(rows):
    """Markdown table of {name: results dict}."""
    lines = ["| run | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for name, res in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{res[c]:.2f}" if c in res else "-" for c in COLUMNS) + " |")
    return "\n".join(lines)


def run_demo(config_file, opts=()):
    args = default_argument_parser().parse_args(["--config-file", config_file, *opts])
    os.environ.setdefault("FASTREID_DATASETS", "datasets")
    start = time.time()
    results = main(args)
    elapsed = time.time() - start
    from .launcher import build_config

    out = build_config(config_file, opts).OUTPUT_DIR
    logging.getLogger(__name__).info("demo finished in %.1f s", elapsed)
    print("\nSynthVeRi results (test set, with re-ranking):\n" + format_results({os.path.basename(config_file): results}))
    print(f"\nwall time: {elapsed:.0f} s")
    print(f"log: {os.path.join(out, 'log.txt')}\ncheckpoint: {os.path.join(out, 'model_final.pth')}\n"
          f"metrics: {os.path.join(out, 'metrics.json')}\nTensorBoard: tensorboard --logdir {out}")
    return results


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Train and evaluate VAL on SynthVeRi (generated on first use).")
    p.add_argument("--config-file", default="configs/SynthVeRi/val_osnet.yml")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides, KEY VALUE ...")
    return p.parse_args(argv)
