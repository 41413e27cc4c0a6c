#!/usr/bin/env python
"""Train or evaluate a FastReID model with the Viewpoint-Aware Loss.

    python tools/train_net.py --config-file configs/VeRi/val_r50.yml
    python tools/train_net.py --config-file configs/VeRi/val_r50.yml --eval-only MODEL.WEIGHTS model_final.pth
    python tools/train_net.py --config-file ... --resume                  # continue from last_checkpoint
    python tools/train_net.py --config-file ... --num-gpus 2              # DDP (NCCL on GPUs, gloo on CPU)

A bad input (config key, dataset, annotation, checkpoint, output folder, non-finite loss) ends with
one line on stderr and exit status 2.
"""
import sys

import fastreid_val  # noqa: F401  (shims and registration)
from fastreid.engine import default_argument_parser, launch
from fastreid_val.engine import main
from fastreid_val.engine.launcher import user_errors
from fastreid_val.errors import one_line


def cli():
    args = default_argument_parser().parse_args()
    try:
        launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
               dist_url=args.dist_url, args=(args,))
    except user_errors() as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    cli()
