#!/usr/bin/env python
"""Build FastReID's compiled rank evaluator (rank_cy, roc_cy) inside the installed package, once."""
import sys

from fastreid_val.evaluation.rank_cylib import build_rank_cylib

if __name__ == "__main__":
    sys.exit(build_rank_cylib())
