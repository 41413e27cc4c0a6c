#!/usr/bin/env python
"""`make demo`: SynthVeRi's reference floors, then the stock Softmax baseline and VAL fine-tuned from
ImageNet weights on CPU (or GPU), evaluated with re-ranking, in one table.

One line per stage and a progress bar per training; FastReID's full logs are in each run's log.txt
(``--verbose`` shows them live)."""
import sys

import fastreid_val  # noqa: F401  (shims and registration)
from fastreid_val.errors import UserInputError, one_line
from fastreid_val.experiments.demo import parse_args, run_demo
from fastreid_val.experiments.progress import setup_console

if __name__ == "__main__":
    args = parse_args()
    setup_console(verbose=args.verbose)
    try:
        run_demo(args.seed, args.out, args.opts, verbose=args.verbose)
    except UserInputError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        sys.exit(2)
