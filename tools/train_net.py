#!/usr/bin/env python
"""Train or evaluate a FastReID model with the Viewpoint-Aware Loss.

    python tools/train_net.py --config-file configs/VeRi/val_r50.yml
    python tools/train_net.py --config-file configs/VeRi/val_r50.yml --eval-only MODEL.WEIGHTS model_final.pth
    python tools/train_net.py --config-file ... --num-gpus 2      # DDP (NCCL on GPUs, gloo on CPU)
"""
import fastreid_val  # noqa: F401  (shims and registration)
from fastreid.engine import default_argument_parser, launch
from fastreid_val.engine import main


def cli():
    args = default_argument_parser().parse_args()
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))


if __name__ == "__main__":
    cli()
