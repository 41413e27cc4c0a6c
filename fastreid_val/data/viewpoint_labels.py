"""Viewpoint label files (``imgid viewpoint [confidence]``, what ``tools/label_viewpoints.py`` writes) and
``DATASETS.VIEWPOINT.TRAIN_LABELS``, which replaces the training images' viewpoints with such a file or
drops them.

``imgid`` is an image's file name without its extension (``0001_c001_00000001_0`` for VeRi's
``0001_c001_00000001_0.jpg``, ``0000042`` for VehicleID's ``image/0000042.jpg``).
"""
import logging
import os
from typing import Dict, List, Sequence

from ..errors import AnnotationError, InvalidConfigError, MissingFileError
from ..textfiles import finite_number, text_lines

logger = logging.getLogger(__name__)

__all__ = ["read_viewpoint_file", "image_id", "train_labels_source", "replace_train_viewpoints"]


def read_viewpoint_file(path: str, num_viewpoints: int = 2) -> Dict[str, int]:
    """``imgid viewpoint [confidence]`` per line (viewpoint in ``0..V-1``; V=2: 0 front, 1 rear) ->
    {imgid: viewpoint}. A malformed line stops with the file and line."""
    labels = {}
    for lineno, line in enumerate(text_lines(path), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) not in (2, 3):
            raise AnnotationError(f"{path}:{lineno}: expected 'imgid viewpoint [confidence]', got {line.strip()[:80]!r}")
        try:
            viewpoint = int(fields[1])
        except ValueError:
            raise AnnotationError(f"{path}:{lineno}: viewpoint must be an integer and confidence a number") from None
        if len(fields) == 3:
            finite_number(fields[2], f"{path}:{lineno}", "the confidence must be a finite number")
        if not 0 <= viewpoint < num_viewpoints:
            expected = "0 (front) or 1 (rear)" if num_viewpoints == 2 else f"in 0..{num_viewpoints - 1}"
            raise AnnotationError(f"{path}:{lineno}: viewpoint must be {expected}, got {viewpoint}")
        labels[fields[0]] = viewpoint
    return labels


def image_id(img_path: str) -> str:
    """The id a label file names an image by: its file name without extension."""
    return os.path.splitext(os.path.basename(img_path))[0]


def train_labels_source(cfg) -> str:
    """``DATASETS.VIEWPOINT.TRAIN_LABELS``, checked: "" (the datasets' own labels), "unknown", or a file."""
    source = cfg.DATASETS.VIEWPOINT.TRAIN_LABELS
    if source not in ("", "unknown") and not os.path.isfile(source):
        raise MissingFileError(f"DATASETS.VIEWPOINT.TRAIN_LABELS {source} does not exist: give a file of "
                               "'imgid viewpoint [confidence]' lines (tools/label_viewpoints.py writes one), "
                               "'unknown' to train with every viewpoint unknown, or '' for the dataset's own labels")
    return source


def replace_train_viewpoints(items: Sequence[tuple], source: str, num_viewpoints: int) -> List[tuple]:
    """Training items ``(img_path, pid, camid, viewpoint)`` with their viewpoints from ``source``.

    ``""`` keeps them; ``"unknown"`` sets every one to -1 (each image then goes to its identity's nearest
    sub-center, ``losses.assign_viewpoints``); a file gives each listed image its viewpoint, and an image
    it does not list -1. A file that names an image that is not a training image is refused: it was
    written for another dataset or split.
    """
    if source == "":
        return list(items)
    if source == "unknown":
        logger.info("DATASETS.VIEWPOINT.TRAIN_LABELS unknown: every training viewpoint is unknown (-1).")
        return [(*it[:3], -1, *it[4:]) for it in items]
    if num_viewpoints < 2:
        raise InvalidConfigError(f"DATASETS.VIEWPOINT.TRAIN_LABELS {source}: MODEL.VAL.NUM_VIEWPOINTS is "
                                 f"{num_viewpoints}, so there is no viewpoint to label; leave the key empty")
    labels = read_viewpoint_file(source, num_viewpoints)
    ids = {image_id(it[0]) for it in items}
    foreign = sorted(set(labels) - ids)
    if foreign:
        raise AnnotationError(f"DATASETS.VIEWPOINT.TRAIN_LABELS {source}: {len(foreign)} of its {len(labels)} image "
                              f"ids are not training images of DATASETS.NAMES, e.g. {foreign[0]!r}")
    out = [(*it[:3], labels.get(image_id(it[0]), -1), *it[4:]) for it in items]
    logger.info("DATASETS.VIEWPOINT.TRAIN_LABELS: viewpoints of %d of %d training images from %s",
                sum(1 for it in out if it[3] >= 0), len(out), source)
    return out
