#!/usr/bin/env python
"""`make demo`: SynthVeRi's reference floors, then the stock Softmax baseline and VAL fine-tuned from
ImageNet weights on CPU (or GPU), evaluated with re-ranking, in one table."""
import sys

import fastreid_val  # noqa: F401  (shims and registration)
from fastreid_val.engine.demo import parse_args, run_demo
from fastreid_val.errors import UserInputError, one_line

if __name__ == "__main__":
    args = parse_args()
    try:
        run_demo(args.seed, args.out, args.opts)
    except UserInputError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        sys.exit(2)
