"""Configuration of the Viewpoint-Aware Loss: ``add_val_config``, and the checks and resolutions of
the stock keys it relies on (device, ImageNet weights, head).

Symbols are those of the paper (Chen et al., "Partition and Reunion", ICIP): γ scale, m margin,
λ reunion weight, V viewpoints per identity. Defaults are the paper's.
"""
import logging
import os

import torch
from fastreid.config import CfgNode as CN

from .data.build import add_viewpoint_data_config
from .data.synthveri.generate import add_synthveri_config
from .data.vehicleid import add_split_config
from .errors import InvalidConfigError, MissingFileError
from .weights_file import load_weights_file

logger = logging.getLogger(__name__)


def add_val_config(cfg):
    """Add every node of fastreid-val to a FastReID config (in place): ``MODEL.VAL`` here, and the
    nodes of the code that reads them (viewpoint data, query/gallery splits, SynthVeRi, run)."""
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

    # Side information embedding of the ViT (build_sie_vit_backbone; TransReID's SIE, weight λ is
    # FastReID's MODEL.BACKBONE.SIE_COE). Cameras of the dataset, ids 0..CAMERAS-1 (0: SIE off).
    _C.MODEL.SIE = CN()
    _C.MODEL.SIE.CAMERAS = 0
    # Viewpoints of TransReID's camera x view embedding (0: camera only); the training set's viewpoint
    # labels, so it equals MODEL.VAL.NUM_VIEWPOINTS (test sets are read with 2, front and rear).
    _C.MODEL.SIE.VIEWS = 0

    add_viewpoint_data_config(cfg)
    add_split_config(cfg)
    add_synthveri_config(cfg)
    # The engine imports this module (launcher.build_config), so its node is imported when needed.
    from .engine.run_settings import add_run_config

    add_run_config(cfg)
    return cfg


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


# Backbones that find their ImageNet weights in an installed package (fastreid_val.modeling.pretrained),
# and those whose weights FastReID downloads (fastreid_val.modeling.imagenet: cache, download, strict check).
PACKAGED_PRETRAIN_BACKBONES = ("build_mobilenetv2_imagenet_backbone",)
DOWNLOADED_PRETRAIN_BACKBONES = ("build_resnet_backbone", "build_sie_vit_backbone")


def resolve_pretrain(cfg):
    """Check, before any work, that a training run can get the ImageNet weights it asks for.

    Called for training only (evaluation loads a checkpoint and needs none). ``PRETRAIN_PATH`` must
    exist when given; an empty one is fine for backbones whose weights are packaged or downloaded;
    for other backbones (whose upstream download needs tools this project does not install) stop and
    name the key. Training from scratch is a deliberate ``MODEL.BACKBONE.PRETRAIN False``.
    """
    b = cfg.MODEL.BACKBONE
    if not b.PRETRAIN:
        return cfg
    if b.PRETRAIN_PATH and not os.path.isfile(b.PRETRAIN_PATH):
        raise MissingFileError(f"MODEL.BACKBONE.PRETRAIN_PATH {b.PRETRAIN_PATH} does not exist: give a local "
                               "ImageNet weights file, or MODEL.BACKBONE.PRETRAIN False to train from scratch.")
    if not b.PRETRAIN_PATH and b.NAME not in PACKAGED_PRETRAIN_BACKBONES + DOWNLOADED_PRETRAIN_BACKBONES:
        raise InvalidConfigError(
            f"MODEL.BACKBONE.PRETRAIN is True but MODEL.BACKBONE.PRETRAIN_PATH is empty: give a local ImageNet "
            f"weights file for {b.NAME}, or MODEL.BACKBONE.PRETRAIN False to train from scratch.")
    if b.PRETRAIN_PATH and b.NAME not in PACKAGED_PRETRAIN_BACKBONES + DOWNLOADED_PRETRAIN_BACKBONES:
        # FastReID's other backbone builders (OSNet, ResNeSt, ...) read the file themselves with torch.load's
        # default, which TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD turns into a full unpickling: read it safely first,
        # so that a file that would run code is refused before they open it (ours read it safely themselves).
        load_weights_file(b.PRETRAIN_PATH, "MODEL.BACKBONE.PRETRAIN_PATH")
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
    check_mgn_stripes(cfg)
    check_vit(cfg)
    if cfg.DATASETS.VIEWPOINT.MISSING_ANNOTATION not in ("error", "unknown"):
        raise InvalidConfigError("DATASETS.VIEWPOINT.MISSING_ANNOTATION must be 'error' or 'unknown', "
                         f"got {cfg.DATASETS.VIEWPOINT.MISSING_ANNOTATION!r}.")


def check_schedule(cfg, iters_per_epoch=None):
    """Refuse a schedule that cannot run, before training starts, naming the keys: FastReID would train and
    then fail inside torch (``ZeroDivisionError`` in ``CosineAnnealingLR`` when the warm-up or the delay
    takes every epoch; in its checkpoint and evaluation hooks when a period is 0), on every rank.

    Without ``iters_per_epoch`` only what the config alone decides; with it (the trainer knows it once the
    training set is read), the warm-up in epochs too, as FastReID's ``build_lr_scheduler`` counts it
    (fastreid/solver/build.py:313): cosine epochs = MAX_EPOCH - max(ceil(WARMUP_ITERS / iters), DELAY_EPOCHS).
    """
    s = cfg.SOLVER
    for key, value in (("SOLVER.MAX_EPOCH", s.MAX_EPOCH), ("SOLVER.CHECKPOINT_PERIOD", s.CHECKPOINT_PERIOD),
                       ("TEST.EVAL_PERIOD", cfg.TEST.EVAL_PERIOD), ("SOLVER.IMS_PER_BATCH", s.IMS_PER_BATCH)):
        if value < 1:
            raise InvalidConfigError(f"{key} must be >= 1, got {value} (a period counts epochs: 1 is every epoch).")
    if s.WARMUP_ITERS < 0 or s.DELAY_EPOCHS < 0:
        raise InvalidConfigError(f"SOLVER.WARMUP_ITERS and SOLVER.DELAY_EPOCHS must be >= 0, got {s.WARMUP_ITERS} "
                                 f"and {s.DELAY_EPOCHS}.")
    if s.DELAY_EPOCHS >= s.MAX_EPOCH > 0 and s.DELAY_EPOCHS > 0:
        raise InvalidConfigError(f"SOLVER.DELAY_EPOCHS {s.DELAY_EPOCHS} is as long as the run (SOLVER.MAX_EPOCH "
                                 f"{s.MAX_EPOCH}): raise MAX_EPOCH above {s.DELAY_EPOCHS} or lower DELAY_EPOCHS.")
    if iters_per_epoch is None:
        return
    if iters_per_epoch < 1:
        raise InvalidConfigError(f"SOLVER.IMS_PER_BATCH {s.IMS_PER_BATCH} is larger than the training set, so an "
                                 "epoch has no iteration: lower SOLVER.IMS_PER_BATCH.")
    warmup_epochs = -(-s.WARMUP_ITERS // iters_per_epoch)
    if s.WARMUP_ITERS > s.MAX_EPOCH * iters_per_epoch:
        raise InvalidConfigError(f"SOLVER.WARMUP_ITERS {s.WARMUP_ITERS} is longer than the run (SOLVER.MAX_EPOCH "
                                 f"{s.MAX_EPOCH} x {iters_per_epoch} iterations an epoch): lower WARMUP_ITERS or "
                                 "raise MAX_EPOCH.")
    if s.SCHED == "CosineAnnealingLR" and s.MAX_EPOCH - max(warmup_epochs, s.DELAY_EPOCHS) < 1:
        raise InvalidConfigError(
            f"SOLVER.MAX_EPOCH {s.MAX_EPOCH} leaves the cosine schedule no epoch: the warm-up (SOLVER.WARMUP_ITERS "
            f"{s.WARMUP_ITERS}, {warmup_epochs} epoch(s) of {iters_per_epoch} iterations) or SOLVER.DELAY_EPOCHS "
            f"{s.DELAY_EPOCHS} takes them all: raise MAX_EPOCH to at least "
            f"{max(warmup_epochs, s.DELAY_EPOCHS) + 1}, or lower WARMUP_ITERS / DELAY_EPOCHS.")


def check_vit(cfg):
    """The ViT's settings that cannot work, refused before any model is built: its position embedding is
    sized for one input grid, its depths are FastReID's two, SIE's table is cameras x views."""
    b, s = cfg.MODEL.BACKBONE, cfg.MODEL.SIE
    if b.NAME not in ("build_vit_backbone", "build_sie_vit_backbone"):
        return
    if list(cfg.INPUT.SIZE_TEST) != list(cfg.INPUT.SIZE_TRAIN):
        raise InvalidConfigError(f"INPUT.SIZE_TEST {list(cfg.INPUT.SIZE_TEST)} differs from INPUT.SIZE_TRAIN "
                                 f"{list(cfg.INPUT.SIZE_TRAIN)}: the ViT's position embedding is sized for one input "
                                 "grid; give both the same size")
    if b.DEPTH not in ("small", "base"):
        raise InvalidConfigError(f"MODEL.BACKBONE.DEPTH {b.DEPTH!r}: FastReID's ViT has the depths small (8 blocks) "
                                 "and base (12 blocks, ViT-B/16) only")
    if b.NAME == "build_vit_backbone" and s.CAMERAS:
        raise InvalidConfigError("MODEL.SIE.CAMERAS is set but FastReID's build_vit_backbone never builds SIE: use "
                                 "MODEL.BACKBONE.NAME build_sie_vit_backbone")
    if s.CAMERAS < 0 or s.VIEWS < 0 or (s.VIEWS and not s.CAMERAS):
        raise InvalidConfigError(f"MODEL.SIE.CAMERAS {s.CAMERAS} and VIEWS {s.VIEWS}: counts >= 0, and VIEWS needs "
                                 "CAMERAS (TransReID's camera x view embedding)")
    if s.VIEWS and s.VIEWS != cfg.MODEL.VAL.NUM_VIEWPOINTS:
        raise InvalidConfigError(f"MODEL.SIE.VIEWS {s.VIEWS} must equal MODEL.VAL.NUM_VIEWPOINTS "
                                 f"{cfg.MODEL.VAL.NUM_VIEWPOINTS}, the viewpoint labels the batches carry")
    if s.CAMERAS and cfg.MODEL.META_ARCHITECTURE not in ("SIEBaseline", "ViewpointBaseline"):
        raise InvalidConfigError(f"MODEL.SIE.CAMERAS is set but {cfg.MODEL.META_ARCHITECTURE} does not pass camera "
                                 "ids to the backbone: use SIEBaseline (stock losses) or ViewpointBaseline (VAL)")


def check_cameras(cfg, camids, where):
    """Refuse camera ids outside ``0..MODEL.SIE.CAMERAS-1`` (they would index past the SIE table), naming
    the largest and ``where`` they come from (a dataset's training or test set)."""
    cameras = cfg.MODEL.SIE.CAMERAS
    if not cameras or cfg.MODEL.BACKBONE.NAME != "build_sie_vit_backbone":
        return
    bad = [c for c in camids if c is not None and not 0 <= c < cameras]
    if bad:
        raise InvalidConfigError(f"{where} has camera ids up to {max(bad)} (and {min(bad)}) but MODEL.SIE.CAMERAS "
                                 f"is {cameras}, ids 0..{cameras - 1}: raise MODEL.SIE.CAMERAS to the dataset's "
                                 "camera count, or 0 to turn SIE off")


def _stripes(rows, parts):
    """How many stripes ``torch.chunk`` gives when it cuts ``rows`` rows into ``parts``."""
    size = -(-rows // parts)
    return -(-rows // size)


def check_mgn_stripes(cfg):
    """MGN cuts the part branches' feature map (1/16 of the input height, ResNet strides) into 2 and 3
    horizontal stripes with ``torch.chunk``, which gives fewer stripes than asked for some heights (4 rows
    into 3 gives 2), and MGN then fails inside its forward. Refuse such an input height up front."""
    if cfg.MODEL.META_ARCHITECTURE not in ("MGN", "ViewpointMGN"):
        return
    for key in ("SIZE_TRAIN", "SIZE_TEST"):
        height = cfg.INPUT[key][0]
        rows = -(-height // 16)
        if _stripes(rows, 2) < 2 or _stripes(rows, 3) < 3:
            works = [h for h in range(16, 400, 16) if _stripes(-(-h // 16), 3) == 3][:6]
            raise InvalidConfigError(
                f"INPUT.{key} height {height} gives MGN's part branches a feature map of {rows} rows, which "
                f"torch.chunk cuts into {_stripes(rows, 2)} and {_stripes(rows, 3)} stripes instead of 2 and 3: "
                f"choose a height whose 1/16, rounded up, is 3 or at least 5, e.g. {', '.join(map(str, works))} "
                f"(the recipes use 256).")
