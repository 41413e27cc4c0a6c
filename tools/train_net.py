#!/usr/bin/env python
"""Train or evaluate a FastReID model with the Viewpoint-Aware Loss.

    python tools/train_net.py --config-file configs/VeRi/val_r50.yml
    python tools/train_net.py --config-file configs/VeRi/val_r50.yml --eval-only MODEL.WEIGHTS model_final.pth
    python tools/train_net.py --config-file ... --resume                  # continue from last_checkpoint
    python tools/train_net.py --config-file ... --num-gpus 2              # DDP (NCCL on GPUs, gloo on CPU)
    python tools/train_net.py --import my_vehicles.py --config-file ... DATASETS.NAMES '("MyVehicles",)'  # your dataset

--import MODULE (repeatable) imports a module of your own first, e.g. one that registers a dataset: a
module name on the Python path, or a .py file (docs/GETTING_STARTED.md, "Your own dataset").

A bad input (config key, dataset, annotation, checkpoint, output folder, non-finite loss) ends with
one line on stderr and exit status 2.
"""
from fastreid_val.engine.cli import cli

if __name__ == "__main__":
    cli()
