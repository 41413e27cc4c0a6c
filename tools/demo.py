#!/usr/bin/env python
"""`make demo`: generate SynthVeRi, train VAL on CPU (or GPU), evaluate with re-ranking, print the table."""
import fastreid_val  # noqa: F401  (shims and registration)
from fastreid_val.engine.demo import parse_args, run_demo


if __name__ == "__main__":
    args = parse_args()
    run_demo(args.config_file, args.opts)
