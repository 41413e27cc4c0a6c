#!/usr/bin/env python
"""Label the viewpoints of every image (V=2: front/rear) from a few hundred hand labels.

    python tools/label_viewpoints.py --labelled hand_labels.csv \
        --images datasets/vehicleid/train_test_split/train_list.txt --image-root datasets/vehicleid/image \
        --output datasets/vehicleid/viewpoints.txt [--backbone resnet --weights resnet50.pth --depth 50x]

The hand labels are what tools/annotate_viewpoints.py writes (rows 'path,viewpoint'; -1, "cannot
tell", is left out). Beside the labels it writes their held-out confusion matrix
(viewpoints.confusion.csv) and a contact sheet of labelled images per viewpoint with their confidence
(viewpoints.contact.png).
"""
import argparse
import logging
import sys

import fastreid_val  # noqa: F401  (shims and registration)
from fastreid_val.errors import UserInputError, one_line
from fastreid_val.labeller import BACKBONES, LabellerSettings, run


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--labelled", required=True, help="CSV of hand labels: path,viewpoint (V=2: 0 front, 1 rear; "
                                                     "-1 cannot tell, left out)")
    p.add_argument("--images", required=True, help="images to label: a folder, or a list (path or id per line)")
    p.add_argument("--image-root", default="", help="folder joined to ids in --images")
    p.add_argument("--ext", default=".jpg")
    p.add_argument("--output", required=True)
    p.add_argument("--num-viewpoints", type=int, default=2, choices=[2, 4, 8],
                   help="V, named as in fastreid_val/data/viewpoints.py (2: front, rear)")
    p.add_argument("--backbone", default=BACKBONES[0], choices=BACKBONES,
                   help="mobilenetv2-imagenet: ImageNet weights from the installed package (default); "
                        "resnet: FastReID's ResNet of --depth, from --weights or from scratch")
    p.add_argument("--weights", default="", help="backbone init: a FastReID checkpoint (backbone.* keys) or, for "
                                                 "--backbone resnet, ImageNet ResNet weights")
    p.add_argument("--depth", default="18x", choices=["18x", "34x", "50x", "101x"],
                   help="ResNet depth of FastReID's backbone (--backbone resnet)")
    p.add_argument("--size", type=int, nargs=2, default=[128, 128])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--holdout", type=float, default=0.2, help="share of hand labels held out for accuracy")
    p.add_argument("--min-accuracy", type=float, default=0.9)
    p.add_argument("--force", action="store_true", help="write labels even below --min-accuracy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (a machine without CUDA uses the cpu)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    s = LabellerSettings(num_viewpoints=a.num_viewpoints, backbone=a.backbone, depth=a.depth, size=tuple(a.size),
                         epochs=a.epochs, holdout=a.holdout, seed=a.seed, weights=a.weights, device=a.device)
    try:
        result = run(a.labelled, a.images, a.output, s, a.min_accuracy, a.force, a.image_root, a.ext)
    except UserInputError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
