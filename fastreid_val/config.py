"""Configuration of the Viewpoint-Aware Loss: one node, ``MODEL.VAL``, plus device resolution.

Symbols are those of the paper (Chen et al., "Partition and Reunion", ICIP): γ scale, m margin,
λ reunion weight, V viewpoints per identity. Defaults are the paper's.
"""
import logging
import os

import torch
from fastreid.config import CfgNode as CN

from .errors import InvalidConfigError, MissingFileError

logger = logging.getLogger(__name__)


def add_val_config(cfg):
    """Add the ``MODEL.VAL`` and ``DATASETS.VIEWPOINT`` nodes to a FastReID config (in place)."""
    _C = cfg

    _C.MODEL.VAL = CN()
    # V: viewpoint subclasses per identity (paper: 2, front and rear; Table 2 also 4 and 8).
    _C.MODEL.VAL.NUM_VIEWPOINTS = 2
    # γ: scale of the cosine logits in the partition loss (Eq. 3).
    _C.MODEL.VAL.SCALE = 48.0
    # m: relaxation margin of the multi-decision boundary (Eq. 7).
    _C.MODEL.VAL.MARGIN = 0.5
    # Multi-decision boundary on/off: Eq. 7 (on, "L_P") or plain cosine φ = s (off, "L_P w/o MB").
    _C.MODEL.VAL.MULTI_BOUNDARY = True
    # Weight of the partition loss L_P in the total loss (Eq. 6 has 1).
    _C.MODEL.VAL.PARTITION_WEIGHT = 1.0
    # λ: weight of the reunion loss L_R (Eq. 5, 6; Table 1 sweeps 0, 0.1, 1, 10). 0 turns L_R off:
    # Table 3's "L_P" and "L_P w/o MB" rows.
    _C.MODEL.VAL.REUNION_WEIGHT = 1.0
    # Reduction of L_R over identities: "sum" (Eq. 5 as written) or "mean".
    _C.MODEL.VAL.REUNION_REDUCTION = "sum"

    _C.DATASETS.VIEWPOINT = CN()
    # Missing annotation file: "error" stops with the file name; "unknown" trains with viewpoint -1
    # for every image (each is assigned to its nearest sub-center, see losses.partition_loss).
    _C.DATASETS.VIEWPOINT.MISSING_ANNOTATION = "error"
    # Random flip (INPUT.FLIP) flips the viewpoint label with the image (needed when V tells left
    # from right, e.g. V=8); when False such a combination is refused.
    _C.DATASETS.VIEWPOINT.FLIP_LABELS = True
    # Seed of the random query/gallery split of VehicleID (upstream's split is unseeded).
    _C.DATASETS.VIEWPOINT.SPLIT_SEED = 0
    # VehicleID protocol: number of random query/gallery splits whose metrics are averaged (paper: 10).
    _C.DATASETS.VIEWPOINT.NUM_SPLITS = 1

    _C.RUN = CN()
    # Seed of torch, NumPy and Python RNGs (model init, identity sampler, augmentation);
    # -1 keeps FastReID's behaviour (a fresh random seed per run).
    _C.RUN.SEED = -1
    # Iterations between writes of losses, ETA and metrics to console, metrics.json and TensorBoard
    # (FastReID's DefaultTrainer hard-codes 200, too rare for short CPU runs).
    _C.RUN.LOG_PERIOD = 20
    # Keep the model's 4-D weights (and so its activations) in channels-last memory format. Same
    # results; on a CPU, depthwise convolutions (MobileNetV2) run about 1.6x faster this way.
    _C.RUN.CHANNELS_LAST = False

    _C.DATASETS.SYNTHVERI = CN()
    # SynthVeRi generator settings (fixed before any comparison; see fastreid_val/data/synthveri).
    _C.DATASETS.SYNTHVERI.NUM_TRAIN_IDS = 200  # training identities
    _C.DATASETS.SYNTHVERI.NUM_TEST_IDS = 100  # test identities (query + gallery)
    _C.DATASETS.SYNTHVERI.IMAGES_PER_ID = 16  # images per identity
    _C.DATASETS.SYNTHVERI.NUM_CAMERAS = 8  # cameras, each with its own light, colour cast, blur, background
    _C.DATASETS.SYNTHVERI.SIZE = [64, 64]  # rendered image size [height, width]
    _C.DATASETS.SYNTHVERI.SEED = 0  # generator seed: same seed and settings give identical files
    return cfg


def synth_settings(cfg):
    """The SynthSettings described by ``DATASETS.SYNTHVERI``."""
    from .data.synthveri import SynthSettings

    s = cfg.DATASETS.SYNTHVERI
    return SynthSettings(num_train_ids=s.NUM_TRAIN_IDS, num_test_ids=s.NUM_TEST_IDS, images_per_id=s.IMAGES_PER_ID,
                         num_cameras=s.NUM_CAMERAS, height=s.SIZE[0], width=s.SIZE[1], seed=s.SEED)


def resolve_device(cfg):
    """Fall back to CPU (and turn AMP off) when the config asks for CUDA on a machine without it.

    One config then serves CPU and GPU users. Mutates ``cfg`` (must not be frozen).
    """
    if str(cfg.MODEL.DEVICE).startswith("cuda") and not torch.cuda.is_available():
        logger.info("MODEL.DEVICE=%s but no CUDA device is present: running on cpu.", cfg.MODEL.DEVICE)
        cfg.MODEL.DEVICE = "cpu"
    if cfg.SOLVER.AMP.ENABLED and not str(cfg.MODEL.DEVICE).startswith("cuda"):
        # FastReID's AMPTrainer asserts CUDA (compat S7).
        logger.info("SOLVER.AMP.ENABLED needs CUDA: mixed precision is off on %s.", cfg.MODEL.DEVICE)
        cfg.SOLVER.AMP.ENABLED = False
    return cfg


# Backbones that find their ImageNet weights in an installed package (fastreid_val.modeling.pretrained).
PACKAGED_PRETRAIN_BACKBONES = ("build_mobilenetv2_imagenet_backbone",)


def resolve_pretrain(cfg):
    """ImageNet weights only from a local file or an installed package, never a download.

    With ``PRETRAIN`` on, ``PRETRAIN_PATH`` empty and a backbone that has no packaged weights,
    FastReID would download them: stop and name the key. Training from scratch is a deliberate
    ``MODEL.BACKBONE.PRETRAIN False``.
    """
    b = cfg.MODEL.BACKBONE
    if b.PRETRAIN and not b.PRETRAIN_PATH and b.NAME not in PACKAGED_PRETRAIN_BACKBONES:
        raise InvalidConfigError(
            f"MODEL.BACKBONE.PRETRAIN is True but MODEL.BACKBONE.PRETRAIN_PATH is empty: give a local ImageNet "
            f"weights file for {b.NAME} (weights are never downloaded), or MODEL.BACKBONE.PRETRAIN False to "
            "train from scratch.")
    if b.PRETRAIN and b.PRETRAIN_PATH and not os.path.isfile(b.PRETRAIN_PATH):
        raise MissingFileError(f"MODEL.BACKBONE.PRETRAIN_PATH {b.PRETRAIN_PATH} does not exist: give a local "
                               "ImageNet weights file, or MODEL.BACKBONE.PRETRAIN False to train from scratch.")
    return cfg


def validate_val_config(cfg):
    """Reject VAL settings that cannot work, naming the key and what is expected."""
    v = cfg.MODEL.VAL
    if v.NUM_VIEWPOINTS < 1:
        raise InvalidConfigError(f"MODEL.VAL.NUM_VIEWPOINTS must be >= 1 (V), got {v.NUM_VIEWPOINTS}.")
    if v.REUNION_WEIGHT < 0:
        raise InvalidConfigError(f"MODEL.VAL.REUNION_WEIGHT (λ) must be >= 0, got {v.REUNION_WEIGHT}.")
    if v.SCALE <= 0:
        raise InvalidConfigError(f"MODEL.VAL.SCALE (γ) must be > 0, got {v.SCALE}.")
    if v.REUNION_REDUCTION not in ("sum", "mean"):
        raise InvalidConfigError(f"MODEL.VAL.REUNION_REDUCTION must be 'sum' or 'mean', got {v.REUNION_REDUCTION!r}.")
    if cfg.MODEL.HEADS.NECK_FEAT not in ("before", "after"):
        raise InvalidConfigError(f"MODEL.HEADS.NECK_FEAT must be 'before' or 'after', got {cfg.MODEL.HEADS.NECK_FEAT!r}.")
    if cfg.MODEL.META_ARCHITECTURE in ("ViewpointBaseline", "ViewpointMGN") and cfg.MODEL.HEADS.NAME == "EmbeddingHead":
        raise InvalidConfigError(f"{cfg.MODEL.META_ARCHITECTURE} trains VAL, which needs MODEL.HEADS.NAME "
                                 "IdentityViewpointHead (EmbeddingHead has no sub-centers); for the stock head "
                                 "use MODEL.META_ARCHITECTURE Baseline.")
    h = cfg.MODEL.HEADS
    if h.NAME == "IdentityViewpointHead" and (h.CLS_LAYER != "Linear" or h.MARGIN != 0 or h.SCALE != 1):
        raise InvalidConfigError(
            f"IdentityViewpointHead classifies with VAL's cosine sub-centers (MODEL.VAL.SCALE γ, MODEL.VAL.MARGIN m), "
            f"so it would ignore MODEL.HEADS.CLS_LAYER {h.CLS_LAYER!r}, SCALE {h.SCALE} and MARGIN {h.MARGIN}: set "
            "them to Linear, 1 and 0 (what VAL replaces in the recipe), or use the stock EmbeddingHead.")
    if cfg.DATASETS.VIEWPOINT.MISSING_ANNOTATION not in ("error", "unknown"):
        raise InvalidConfigError("DATASETS.VIEWPOINT.MISSING_ANNOTATION must be 'error' or 'unknown', "
                         f"got {cfg.DATASETS.VIEWPOINT.MISSING_ANNOTATION!r}.")
