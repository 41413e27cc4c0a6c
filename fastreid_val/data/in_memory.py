"""Small training sets decoded once into memory and augmented as tensors, a batch at a time
(``DATALOADER.IN_MEMORY``).

On a 2-core CPU, the file loader's workers take the cores from the training step: the demo's step ran
1.24-1.29x slower fed by them than on a batch already in memory (``benchmarks/train_step.py --case demo``,
docs/STUDY.md). Here the training images are decoded and resized once (FastReID's own ``Resize``), kept
as uint8 tensors, and each batch is built in the training process: the random flip per image (with its
viewpoint label, as :class:`.common.ViewpointCommDataset` does) and FastReID's colour jitter, applied to
the whole batch at once with per-image draws and the same semantics as its PIL transforms: each image
jittered with probability ``INPUT.CJ.PROB``, then brightness, contrast, saturation and hue factors drawn
uniformly from torchvision's ``ColorJitter`` ranges and applied in a random order per image, each step
rounded to 8 bits as PIL's are. Pixels come out as FastReID's ``ToTensor`` gives them: float, 0..255.

``DATALOADER.IN_MEMORY``: ``auto`` (on where the run trains on the CPU in one process, its training
transforms are only those above, and the decoded images take at most ``DATALOADER.IN_MEMORY_MAX_MB``),
``on`` (whatever the device and size; a transform this path lacks is refused with one line) or ``off``.
The GPU and large-dataset path is FastReID's file loader with its workers, as before.
"""
import logging

import numpy as np
import torch
import torchvision.transforms as T
from fastreid.data.transforms.transforms import ToTensor
from fastreid.utils import comm

from ..errors import InvalidConfigError
from .common import ViewpointCommDataset, read_user_image

logger = logging.getLogger(__name__)

__all__ = ["memory_plan", "log_choice", "InMemoryViewpointDataset", "JitterCollate", "decode", "color_jitter",
           "adjust_brightness", "adjust_contrast", "adjust_saturation", "adjust_hue"]


def memory_plan(cfg, transforms, n_images):
    """``(resize, jitter)`` for a run that trains from memory, else None. ``transforms``: FastReID's
    training transforms (built with the flip off: the dataset flips); ``resize`` is their ``Resize``
    (None: none), ``jitter`` their ``RandomApply(ColorJitter)`` (None: none)."""
    mode = str(cfg.DATALOADER.IN_MEMORY).lower()
    if mode not in ("auto", "on", "off", "true", "false"):
        raise InvalidConfigError(f"DATALOADER.IN_MEMORY {cfg.DATALOADER.IN_MEMORY!r}: use auto, on or off")
    if mode in ("off", "false"):
        return None
    resize = jitter = None
    unsupported = []
    for t in transforms.transforms:
        if isinstance(t, T.Resize) and isinstance(t.size, (list, tuple)) and len(t.size) == 2:
            resize = t
        elif isinstance(t, T.RandomApply) and len(t.transforms) == 1 and isinstance(t.transforms[0], T.ColorJitter):
            jitter = t
        elif not isinstance(t, ToTensor):
            unsupported.append(type(t).__name__)
    forced = mode in ("on", "true")
    if unsupported:
        if forced:
            raise InvalidConfigError(
                f"DATALOADER.IN_MEMORY on: the training transforms include {', '.join(unsupported)}, which the "
                "in-memory loader does not apply (it resizes once, flips and jitters colour): set it to auto or off")
        return None
    if resize is None:
        if forced:
            raise InvalidConfigError("DATALOADER.IN_MEMORY on needs INPUT.SIZE_TRAIN as [height, width] (every "
                                     "image the same size in memory): set it, or DATALOADER.IN_MEMORY auto or off")
        return None
    height, width = resize.size
    megabytes = n_images * 3 * height * width / 2**20
    if not forced and (not str(cfg.MODEL.DEVICE).startswith("cpu") or comm.get_world_size() > 1
                       or megabytes > cfg.DATALOADER.IN_MEMORY_MAX_MB):
        return None
    return resize, jitter


def decode(items, resize):
    """The images of ``items`` decoded and resized once: uint8 [N, 3, H, W]."""
    height, width = resize.size
    images = torch.empty((len(items), 3, height, width), dtype=torch.uint8)
    for i, item in enumerate(items):
        img = resize(read_user_image(item[0]))
        images[i] = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)
    return images


class InMemoryViewpointDataset(ViewpointCommDataset):
    """:class:`.common.ViewpointCommDataset` over decoded images (uint8 [N, 3, H, W], in the order of
    ``img_items``): an item's ``images`` is its uint8 image, flipped with its viewpoint label; the colour
    jitter and the float conversion are the batch's (:class:`JitterCollate`)."""

    def __init__(self, img_items, images, relabel=True, flip_prob=0.0, flip_map=None):
        super().__init__(img_items, None, relabel=relabel, flip_prob=flip_prob, flip_map=flip_map)
        if len(images) != len(self.img_items):
            raise ValueError(f"{len(images)} decoded images for {len(self.img_items)} items")
        self.images = images

    def read(self, index):
        return self.images[index]

    def flip_image(self, img):
        return img.flip(-1)


class JitterCollate:
    """Collates items of :class:`InMemoryViewpointDataset` into a batch whose images FastReID's colour
    jitter (``RandomApply(ColorJitter)``, or None: no jitter) has been applied to: float [B, 3, H, W]."""

    def __init__(self, jitter=None):
        self.prob = 0.0 if jitter is None else float(jitter.p)
        cj = None if jitter is None else jitter.transforms[0]
        self.ranges = [None if cj is None else getattr(cj, name)
                       for name in ("brightness", "contrast", "saturation", "hue")]

    def __call__(self, items):
        from fastreid.data.build import fast_batch_collator

        batch = fast_batch_collator(items)
        batch["images"] = color_jitter(batch["images"], self.prob, self.ranges)
        return batch


def _uniform(n, bounds, default):
    if bounds is None:
        return torch.full((n,), default)
    low, high = float(bounds[0]), float(bounds[1])
    return torch.empty(n).uniform_(low, high)


def color_jitter(images, prob, ranges):
    """FastReID's ``RandomApply([ColorJitter(b, c, s, h)], p=prob)`` on each image of ``images`` (uint8 or
    float [B, 3, H, W], 0..255), drawn independently per image: float [B, 3, H, W], 0..255. ``ranges``:
    torchvision's (min, max) of each factor (brightness, contrast, saturation, hue), None where off."""
    x = images.to(torch.float32, copy=True)  # a float input is not changed in place
    n = len(x)
    if prob <= 0 or n == 0 or all(r is None for r in ranges):
        return x
    applied = torch.rand(n) < prob
    order = torch.argsort(torch.rand(n, 4), dim=1)  # a random order of the four per image (torch.randperm(4))
    factors = [_uniform(n, ranges[0], 1.0), _uniform(n, ranges[1], 1.0), _uniform(n, ranges[2], 1.0),
               _uniform(n, ranges[3], 0.0)]
    ops = [adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue]
    # Each op on the images that take it at this position only (a CPU path: the indices are on the host).
    for position in range(4):
        for op, (fn, factor) in enumerate(zip(ops, factors)):
            if ranges[op] is None:
                continue
            chosen = torch.nonzero(applied & (order[:, position] == op)).flatten()
            if len(chosen):
                x[chosen] = fn(x[chosen], factor[chosen])
    return x


def _per_image(factor):
    return factor.view(-1, 1, 1, 1).to(torch.float32)


def _to_8_bits(x):
    return x.round().clamp(0.0, 255.0)


def _gray(x):
    """PIL's ``convert("L")``: ITU-R 601-2 luma, rounded, [B, 1, H, W]."""
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).round()


def adjust_brightness(x, factor):
    """PIL's ``ImageEnhance.Brightness``: a blend with black."""
    return _to_8_bits(x * _per_image(factor))


def adjust_contrast(x, factor):
    """PIL's ``ImageEnhance.Contrast``: a blend with the image's mean grey (rounded to an integer)."""
    mean = torch.floor(_gray(x).mean(dim=(1, 2, 3), keepdim=True) + 0.5)
    f = _per_image(factor)
    return _to_8_bits(mean + f * (x - mean))


def adjust_saturation(x, factor):
    """PIL's ``ImageEnhance.Color``: a blend with the image's grey version."""
    gray = _gray(x)
    f = _per_image(factor)
    return _to_8_bits(gray + f * (x - gray))


def adjust_hue(x, factor):
    """torchvision's PIL ``adjust_hue``: the hue turned by ``factor`` of a full turn (in -0.5..0.5) in
    HSV, saturation and value kept; as there, the turn is ``factor`` · 255 truncated to whole steps of
    1/255 (PIL's 8-bit hue)."""
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    maxc, _ = x.max(dim=1)
    minc, _ = x.min(dim=1)
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, (h / 6.0) % 1.0, torch.zeros_like(h))
    h = (h + torch.trunc(factor.view(-1, 1, 1).to(torch.float32) * 255.0) / 255.0) % 1.0
    s = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)), torch.zeros_like(maxc))
    v, h6 = maxc, h * 6.0

    def channel(n):  # HSV to RGB, one channel: n = 5 (red), 3 (green), 1 (blue)
        k = (n + h6) % 6.0
        return v - v * s * torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)

    out = torch.stack([channel(5.0), channel(3.0), channel(1.0)], dim=1)
    return _to_8_bits(out)


def log_choice(plan, n_images, cfg):
    """Say in the log that ``plan`` (``memory_plan``'s, not None) decoded the training set into memory."""
    height, width = plan[0].size
    logger.info("DATALOADER.IN_MEMORY %s: %d training images decoded once into memory (%.0f MB at %dx%d), "
                "flipped and colour-jittered a batch at a time in this process", cfg.DATALOADER.IN_MEMORY,
                n_images, n_images * 3 * height * width / 2**20, height, width)

