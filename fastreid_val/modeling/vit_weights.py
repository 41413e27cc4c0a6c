"""ImageNet ViT-B/16 weights for ``build_sie_vit_backbone``, under the ResNet files' rules
(:mod:`fastreid_val.modeling.imagenet`): FastReID's cache, downloaded once per machine, hash-checked, strict.

FastReID's ViT recipe points ``PRETRAIN_PATH`` at a local ``jx_vit_base_p16_224-80ecf9dd.pth`` and
downloads nothing. Here an empty ``PRETRAIN_PATH`` names that file's public release (:data:`VIT_URL`, the
ViT-B/16 weights TransReID starts from): found in ``$TORCH_HOME/checkpoints/`` under that name or
downloaded there (``FASTREID_VAL_WEIGHTS_MIRROR`` serves it too), its SHA-256 checked against the name's
prefix ``80ecf9dd`` (an unreachable host: one line with the URL and the path to put the file at).

Loading (upstream: ``strict=False`` and a log line): the ImageNet classifier (``head.*``) is dropped, the
position embedding resized to the input grid (FastReID's ``resize_pos_embed``, bilinear), and every other
tensor of the backbone must come from the file, or the run stops with one line naming the keys; only
the SIE table (``sie_embed``, new) is not in any ImageNet file.
"""
import logging
import os

from fastreid.modeling.backbones.vision_transformer import resize_pos_embed

from ..errors import MissingFileError, PretrainedWeightsError
from ..weights_file import load_weights_file

logger = logging.getLogger(__name__)

__all__ = ["VIT_URL", "vit_weights_url", "resolve_vit_weights", "load_imagenet_vit"]

# The ViT-B/16 ImageNet-21k+1k file of the timm release FastReID's config names (jx_ = ported from JAX).
VIT_URL = ("https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-vitjx/"
           "jx_vit_base_p16_224-80ecf9dd.pth")
DROPPED_PREFIXES = ("head.", "pre_logits.")  # ImageNet classifier (and representation layer of 21k files)
NEW_KEYS = ("sie_embed",)


def vit_weights_url():
    mirror = os.getenv("FASTREID_VAL_WEIGHTS_MIRROR")
    return mirror.rstrip("/") + "/" + VIT_URL.rsplit("/", 1)[1] if mirror else VIT_URL


def resolve_vit_weights(cfg):
    """With ``PRETRAIN`` on: ``PRETRAIN_PATH`` (``cfg`` not frozen) set to the given, cached or downloaded file."""
    from .imagenet import cached_weights  # the ResNet files' cache, lock and checked download

    b = cfg.MODEL.BACKBONE
    if not b.PRETRAIN or b.NAME != "build_sie_vit_backbone":
        return cfg
    if b.PRETRAIN_PATH and not os.path.isfile(b.PRETRAIN_PATH):
        raise MissingFileError(f"MODEL.BACKBONE.PRETRAIN_PATH {b.PRETRAIN_PATH} does not exist: give a local "
                               "ViT weights file, or leave it empty to download the ViT-B/16 ImageNet file.")
    b.PRETRAIN_PATH = b.PRETRAIN_PATH or cached_weights(vit_weights_url())
    return cfg


def load_imagenet_vit(model, path):
    """Fill ``model`` (a :class:`~fastreid_val.modeling.vit.SideInformationViT`) from the ImageNet file ``path``."""
    if not path:
        raise MissingFileError("MODEL.BACKBONE.PRETRAIN is on but no ViT weights file was resolved: set "
                               "MODEL.BACKBONE.PRETRAIN_PATH, or PRETRAIN False to train from scratch.")
    state = load_weights_file(path, "ViT ImageNet weights")
    state = state.get("model", state.get("state_dict", state))
    own = model.state_dict()
    state = {k: v for k, v in state.items() if not k.startswith(DROPPED_PREFIXES)}
    proj = state.get("patch_embed.proj.weight")
    if proj is not None and proj.dim() < 4:  # files of timm's linear patchification
        state["patch_embed.proj.weight"] = proj.reshape(own["patch_embed.proj.weight"].shape)
    pos = state.get("pos_embed")
    if pos is not None and pos.dim() == 3 and pos.shape != own["pos_embed"].shape and \
            pos.shape[-1] == own["pos_embed"].shape[-1]:
        state["pos_embed"] = resize_pos_embed(pos, own["pos_embed"], model.patch_embed.num_y, model.patch_embed.num_x)
    missing = sorted(k for k in own if k not in state and k not in NEW_KEYS)
    unexpected = sorted(k for k in state if k not in own)
    misshapen = sorted(k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape))
    if missing or unexpected or misshapen:
        raise PretrainedWeightsError(
            f"ViT weights {path} do not fit the backbone: {len(missing)} tensors missing {missing[:3]}, "
            f"{len(unexpected)} unexpected {unexpected[:3]}, {len(misshapen)} of another shape {misshapen[:3]} "
            "(MODEL.BACKBONE.DEPTH base is ViT-B/16's shape)")
    model.load_state_dict(state, strict=False)  # only NEW_KEYS are not in the file (checked above)
    logger.info("ViT ImageNet weights %s fill every backbone tensor (position embedding resized to %dx%d)%s",
                path, model.patch_embed.num_y, model.patch_embed.num_x,
                "; the SIE table is new" if "sie_embed" in own else "")
