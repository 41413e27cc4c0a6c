"""The paper's viewpoint labeller (Sec. 3.1, VehicleID): hand-label a few images, train a front/rear
classifier, report held-out accuracy, and label every image with a confidence.

Output lines are ``imgid viewpoint confidence`` (``vehicleid/viewpoints.txt``), ``imgid`` being the
file name without extension. Nothing is written when held-out accuracy is below the threshold,
unless forced.
"""
import csv
import logging
import os
import tempfile
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from fastreid.data.data_utils import read_image
from fastreid.modeling.backbones import build_backbone
from PIL import Image

from .errors import (AnnotationError, CheckpointMismatchError, InvalidConfigError, LowAccuracyError, MissingFileError,
                     OutputDirError, UnreadableImageError)
from .weights_file import load_weights_file

logger = logging.getLogger(__name__)

__all__ = ["BACKBONES", "LabellerSettings", "read_labelled_csv", "read_image_list", "train_labeller", "label_images",
           "write_labels", "LowAccuracyError"]


BACKBONES = ("mobilenetv2-imagenet", "resnet")


@dataclass
class LabellerSettings:
    num_viewpoints: int = 2
    # "mobilenetv2-imagenet": FastReID's MobileNetV2 from the packaged ImageNet weights (a few hundred
    # hand labels suffice); "resnet": FastReID's ResNet of ``depth``, from ``weights`` or from scratch.
    backbone: str = "mobilenetv2-imagenet"
    depth: str = "18x"
    size: Tuple[int, int] = (128, 128)
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    holdout: float = 0.2
    seed: int = 0
    weights: str = ""  # FastReID checkpoint (backbone.* keys) or ImageNet ResNet state dict
    device: str = "cuda"  # where the labeller trains and labels; a machine without CUDA uses the CPU

    def __post_init__(self):
        if str(self.device).startswith("cuda") and not torch.cuda.is_available():
            logger.info("labeller device %s: no CUDA device is present, labelling on cpu.", self.device)
            self.device = "cpu"


def _text_lines(path: str) -> List[str]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return f.readlines()
    except UnicodeDecodeError as e:
        raise AnnotationError(f"{path}: not a UTF-8 text file ({e.reason} at byte {e.start})") from None


def read_labelled_csv(path: str, num_viewpoints: int = 2) -> List[Tuple[str, int]]:
    rows = []
    for lineno, row in enumerate(csv.reader(_text_lines(path)), 1):
        if not row or row[0].startswith("#") or (lineno == 1 and row[0].strip().lower() == "path"):
            continue
        if len(row) < 2:
            raise AnnotationError(f"{path}:{lineno}: expected 'path,viewpoint'")
        try:
            v = int(row[1])
        except ValueError:
            raise AnnotationError(f"{path}:{lineno}: viewpoint must be an integer, got {row[1]!r}") from None
        if not 0 <= v < num_viewpoints:
            raise AnnotationError(f"{path}:{lineno}: viewpoint must be in 0..{num_viewpoints - 1}, got {v}")
        rows.append((row[0].strip(), v))
    if len({v for _, v in rows}) < 2:
        raise AnnotationError(f"{path}: needs hand labels of at least two viewpoints, got {len(rows)} rows")
    return rows


def read_image_list(path: str, image_root: str = "", ext: str = ".jpg") -> List[str]:
    """One image per line; the first token is a path, or an id joined to ``image_root`` + ``ext``."""
    out = []
    for line in _text_lines(path):
        if line.strip():
            token = line.split()[0]
            out.append(os.path.join(image_root, token + ext) if image_root else token)
    return out


def _load(paths: Sequence[str], size) -> torch.Tensor:
    imgs = []
    for p in paths:
        try:
            img = read_image(p).convert("RGB").resize((size[1], size[0]), Image.BILINEAR)
        except OSError as e:
            raise UnreadableImageError(f"cannot read image {p}: {e}") from e
        imgs.append(torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1))
    x = torch.stack(imgs).float() / 255.0
    return (x - 0.45) / 0.225


class _Classifier(torch.nn.Module):
    def __init__(self, s: LabellerSettings):
        super().__init__()
        from fastreid.config import get_cfg

        cfg = get_cfg()
        if s.backbone == "mobilenetv2-imagenet":
            cfg.MODEL.BACKBONE.NAME = "build_mobilenetv2_imagenet_backbone"
            cfg.MODEL.BACKBONE.DEPTH = "1.0x"
            cfg.MODEL.BACKBONE.PRETRAIN = not s.weights
            feat = 1280
        elif s.backbone == "resnet":
            cfg.MODEL.BACKBONE.DEPTH = s.depth
            cfg.MODEL.BACKBONE.PRETRAIN = False
            cfg.MODEL.BACKBONE.LAST_STRIDE = 2
            feat = 512 if s.depth in ("18x", "34x") else 2048
        else:
            raise InvalidConfigError(f"labeller backbone must be one of {', '.join(BACKBONES)}, got {s.backbone!r}")
        self.backbone = build_backbone(cfg)
        self.fc = torch.nn.Linear(feat, s.num_viewpoints)
        if s.weights:
            self._load_weights(s.weights)

    def _load_weights(self, path):
        state = load_weights_file(path, "labeller --weights")  # no pickled code runs
        state = state.get("model", state) if isinstance(state, dict) else state
        if any(k.startswith("backbone.") for k in state):
            state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
        missing, _ = self.backbone.load_state_dict(state, strict=False)
        if len(missing) == len(self.backbone.state_dict()):
            raise CheckpointMismatchError(f"{path}: no backbone weights matched the {self.fc.in_features}-d backbone")
        logger.info("labeller backbone initialised from %s (%d tensors missing)", path, len(missing))

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.backbone(x), 1).flatten(1))


def train_labeller(rows: List[Tuple[str, int]], s: LabellerSettings):
    """Returns (model, held-out accuracy). The hold-out split is stratified by viewpoint."""
    rng = np.random.default_rng(s.seed)
    torch.manual_seed(s.seed)
    labels = np.array([v for _, v in rows])
    train_idx, test_idx = [], []
    for v in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == v))
        k = max(1, int(round(len(idx) * s.holdout)))
        test_idx += idx[:k].tolist()
        train_idx += idx[k:].tolist()
    x = _load([p for p, _ in rows], s.size)
    y = torch.as_tensor(labels)
    model = _Classifier(s).to(s.device)
    y = y.to(s.device)
    opt = torch.optim.Adam(model.parameters(), lr=s.lr, weight_decay=5e-4)
    train_idx = np.array(train_idx)
    for epoch in range(s.epochs):
        model.train()
        for b in np.array_split(rng.permutation(train_idx), max(1, len(train_idx) // s.batch_size)):
            xb = x[b].to(s.device, non_blocking=True)
            if rng.random() < 0.5 and s.num_viewpoints <= 4:  # front/rear is flip-invariant
                xb = xb.flip(3)
            loss = F.cross_entropy(model(xb), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x[test_idx].to(s.device)).argmax(1) == y[test_idx]).float().mean().item()
    return model, acc


@torch.no_grad()
def label_images(model, paths: Sequence[str], s: LabellerSettings, batch: int = 64):
    out = []
    device = next(model.parameters()).device
    for i in range(0, len(paths), batch):
        prob = model(_load(paths[i:i + batch], s.size).to(device)).softmax(1)
        conf, pred = prob.max(1)
        out += list(zip(paths[i:i + batch], pred.tolist(), conf.tolist()))
    return out


def write_labels(path: str, labelled) -> None:
    """Atomic write of ``imgid viewpoint confidence`` lines."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-viewpoints-")
    with os.fdopen(fd, "w") as f:
        for p, v, c in labelled:
            f.write(f"{os.path.splitext(os.path.basename(p))[0]} {v} {c:.4f}\n")
    os.replace(tmp, path)


def run(labelled_csv: str, image_list: str, output: str, s: LabellerSettings, min_accuracy: float = 0.9,
        force: bool = False, image_root: str = "", ext: str = ".jpg") -> float:
    for what, path in (("hand labels", labelled_csv), ("image list", image_list), ("weights", s.weights)):
        if path and not os.path.isfile(path):
            raise MissingFileError(f"{what} file {path} does not exist")
    out_dir = os.path.dirname(os.path.abspath(output))
    if os.path.isdir(output) or not os.path.isdir(out_dir) or not os.access(out_dir, os.W_OK):
        raise OutputDirError(f"cannot write {output}: it is a folder, or folder {out_dir} does not exist or is "
                             "not writable")
    rows = read_labelled_csv(labelled_csv, s.num_viewpoints)
    paths = read_image_list(image_list, image_root, ext)
    # Every image is checked before training, so a wrong path does not cost a training run.
    for what, listed in (("hand labels", [p for p, _ in rows]), ("image list", paths)):
        missing = [p for p in listed if not os.path.isfile(p)]
        if missing:
            raise MissingFileError(f"{len(missing)} images of the {what} do not exist, e.g. {missing[0]}")
    model, acc = train_labeller(rows, s)
    logger.info("viewpoint labeller: held-out accuracy %.3f on %d hand-labelled images", acc, len(rows))
    if acc < min_accuracy and not force:
        raise LowAccuracyError(f"held-out accuracy {acc:.3f} is below --min-accuracy {min_accuracy}; "
                               f"nothing written to {output} (label more images, or pass --force)")
    write_labels(output, label_images(model, paths, s))
    return acc
