"""A trained model ready for inference: built from its config, its checkpoint checked against it,
the input it expects, and a fingerprint that names it.

The embedding is the model's evaluation output, ``model.eval(); model(images)``: FastReID's
``Baseline`` (and ``ViewpointBaseline``, ``MGN``) normalise ``images`` with ``MODEL.PIXEL_MEAN/STD``
inside ``forward``, so the model takes what FastReID's test transform gives: RGB images (FastReID's
``read_image``), resized to ``INPUT.SIZE_TEST`` with bicubic interpolation, as float tensors in
0..255 (FastReID's ``ToTensor`` does not scale to 0..1). VAL's sub-centers are the training
classifier; the evaluation output never uses them.
"""
import hashlib
import json

import torch
from fastreid.config import get_cfg
from fastreid.data.transforms import build_transforms
from fastreid.modeling import build_model

from ..engine.checkpoint import check_checkpoint_covers_model, read_checkpoint_model
from ..engine.launcher import num_classes_from_checkpoint, build_config
from ..errors import InvalidConfigError, MissingFileError
from ..modeling.vit import SideInformationViT

__all__ = ["inference_config", "load_model", "preprocessing", "input_shape", "image_transform", "fingerprint",
           "takes_camera"]

# Config keys that change the embedding of given weights (besides the weights themselves).
_ESSENTIAL = ("MODEL.META_ARCHITECTURE", "MODEL.BACKBONE.NAME", "MODEL.BACKBONE.DEPTH", "MODEL.HEADS.NAME",
              "MODEL.HEADS.POOL_LAYER", "MODEL.PIXEL_MEAN", "MODEL.PIXEL_STD", "INPUT.SIZE_TEST",
              "INPUT.CROP.ENABLED", "INPUT.CROP.SIZE")


def inference_config(config_file, weights, opts=(), device=None):
    """The config of a trained model: ``config_file`` + ``opts``, weights from ``weights`` only.

    The backbone's ImageNet weights are not loaded (the checkpoint holds every tensor), and the
    classifier is sized like the checkpoint's, so that it loads whole. ``device`` overrides
    ``MODEL.DEVICE`` (export runs on CPU: the graph does not depend on the device).
    """
    if not config_file:
        raise MissingFileError(f"--config-file is needed with the checkpoint {weights}: give the config it was "
                               "trained with (an exported .onnx file needs none)")
    extra = ["MODEL.BACKBONE.PRETRAIN", "False", "MODEL.WEIGHTS", weights] + (["MODEL.DEVICE", device] if device else [])
    return build_config(config_file, list(opts) + extra)


def load_model(cfg, state=None, config_file=""):
    """``cfg``'s model in eval mode on ``cfg.MODEL.DEVICE``, every tensor from ``cfg.MODEL.WEIGHTS``.

    A checkpoint that does not fit (another backbone, head, V or number of identities) stops with
    :class:`~fastreid_val.engine.checkpoint.CheckpointMismatchError` before anything is loaded
    (``config_file`` is named in the message).
    """
    path = cfg.MODEL.WEIGHTS
    state = read_checkpoint_model(path) if state is None else state
    num_classes_from_checkpoint(cfg, state)
    model = build_model(cfg)
    check_checkpoint_covers_model(model, path, state, config_hint=config_file)
    own = model.state_dict()
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    model.load_state_dict({k: torch.as_tensor(v).to(own[k].dtype) for k, v in state.items()})
    return model.eval()


def takes_camera(model):
    """Whether ``model``'s backbone has a camera side information embedding (SIE): the model and its export take
    ``camids`` int64 [N] as a second input (-1: camera unknown, the mean of the cameras' vectors)."""
    backbone = getattr(model, "backbone", None)
    return isinstance(backbone, SideInformationViT) and backbone.cameras > 0


def preprocessing(cfg):
    """What a caller feeds the model, as written into an exported model's metadata."""
    size = list(cfg.INPUT.SIZE_TEST)
    crop = list(cfg.INPUT.CROP.SIZE) if cfg.INPUT.CROP.ENABLED else None
    return {"size": size, "crop": crop, "interpolation": "bicubic", "channels": "RGB", "range": [0, 255],
            "layout": "NCHW", "dtype": "float32", "pixel_mean": list(cfg.MODEL.PIXEL_MEAN),
            "pixel_std": list(cfg.MODEL.PIXEL_STD), "normalised_by_model": True}


def input_shape(prep):
    """(H, W) of the model's input tensor; needs a fixed size ([H, W], or a crop of [H, W])."""
    hw = prep["crop"] or prep["size"]
    if len(hw) == 1 and prep["crop"]:
        hw = hw * 2  # CenterCrop(s) is s x s
    if len(hw) != 2:
        raise InvalidConfigError(f"INPUT.SIZE_TEST {prep['size']} resizes the short side only; export and search "
                                 "need a fixed input size: INPUT.SIZE_TEST [H, W] (or INPUT.CROP)")
    return tuple(int(v) for v in hw)


def image_transform(prep):
    """FastReID's test transform for ``prep``: resize (and crop), then a 0..255 float tensor [3, H, W]."""
    cfg = get_cfg()
    cfg.INPUT.SIZE_TEST = list(prep["size"])
    cfg.INPUT.CROP.ENABLED = prep["crop"] is not None
    if prep["crop"] is not None:
        cfg.INPUT.CROP.SIZE = list(prep["crop"])
    return build_transforms(cfg, is_train=False)


def fingerprint(cfg):
    """A short hash naming the model: its weights file and the config keys that change its embedding.

    An exported ONNX file carries the fingerprint of its checkpoint, so an index built with one
    can be queried with the other (their features agree within the export check's tolerance).
    """
    h = hashlib.sha256()
    with open(cfg.MODEL.WEIGHTS, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    h.update(json.dumps(essentials(cfg), sort_keys=True).encode())
    return h.hexdigest()[:16]


def essentials(cfg):
    out = {}
    for key in _ESSENTIAL:
        node = cfg
        for part in key.split("."):
            node = node[part]
        out[key] = list(node) if isinstance(node, (list, tuple)) else node
    return out
