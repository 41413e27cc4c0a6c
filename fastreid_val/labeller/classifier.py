"""The viewpoint classifier: an ImageNet backbone and a linear layer over V viewpoints, trained on the
hand labels with a stratified hold-out, then run over every image."""
import logging
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from fastreid.data.data_utils import read_image
from fastreid.modeling.backbones import build_backbone
from PIL import Image

from ..errors import CheckpointMismatchError, InvalidConfigError, UnreadableImageError
from ..weights_file import load_weights_file

logger = logging.getLogger(__name__)

__all__ = ["BACKBONES", "LabellerSettings", "HeldOut", "train_labeller", "label_images"]

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


@dataclass
class HeldOut:
    """The hand labels held out of training, with the trained classifier's answers."""
    paths: List[str]
    truth: List[int]
    predicted: List[int]

    @property
    def accuracy(self) -> float:
        return float(np.mean(np.array(self.truth) == np.array(self.predicted))) if self.truth else float("nan")


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
    """Returns (model, :class:`HeldOut`). The hold-out split is stratified by viewpoint."""
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
        predicted = model(x[test_idx].to(s.device)).argmax(1).tolist()
    return model, HeldOut([rows[i][0] for i in test_idx], labels[test_idx].tolist(), predicted)


@torch.no_grad()
def label_images(model, paths: Sequence[str], s: LabellerSettings, batch: int = 64):
    """``[(path, viewpoint, confidence)]``: the most probable viewpoint of each image and its probability."""
    out = []
    device = next(model.parameters()).device
    for i in range(0, len(paths), batch):
        prob = model(_load(paths[i:i + batch], s.size).to(device)).softmax(1)
        conf, pred = prob.max(1)
        out += list(zip(paths[i:i + batch], pred.tolist(), conf.tolist()))
    return out
