"""Reader of VeRi-776's keypoint/orientation annotation files (``keypoint_train.txt``, ``keypoint_test.txt``).

A line has 42 space-separated fields: the image path, x1 y1 ... x20 y20 (``-1 -1`` = invisible
keypoint) and the orientation 0..7. Lines are matched to images by file name.
"""
import os
from dataclasses import dataclass
from typing import Dict

from ..errors import AnnotationError
from ..textfiles import finite_number, text_lines
from .viewpoints import FRONT_KEYPOINTS, REAR_KEYPOINTS

__all__ = ["OrientationLabel", "AnnotationError", "read_keypoint_file"]

NUM_FIELDS = 42


@dataclass(frozen=True)
class OrientationLabel:
    orientation: int
    visible_front: int  # visible keypoints among 5-10
    visible_rear: int  # visible keypoints among 17-20


def _visible(coords, keypoints) -> int:
    return sum(1 for k in keypoints if not (coords[2 * (k - 1)] == -1 and coords[2 * (k - 1) + 1] == -1))


def read_keypoint_file(path: str) -> Dict[str, OrientationLabel]:
    """Map image file name -> :class:`OrientationLabel`.

    The published test file lists some images twice (always with the same label): repeats are
    accepted when they agree and refused when they do not.
    """
    labels: Dict[str, OrientationLabel] = {}
    for lineno, line in enumerate(text_lines(path), 1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}:{lineno}"
        if len(fields) != NUM_FIELDS:
            raise AnnotationError(f"{where}: expected {NUM_FIELDS} fields (path, 20 keypoints x y, "
                                  f"orientation), got {len(fields)}")
        numbers = [int(finite_number(x, where, "keypoint coordinates and orientation must be finite numbers")) for x in fields[1:]]
        orientation = numbers[-1]
        if not 0 <= orientation <= 7:
            raise AnnotationError(f"{where}: orientation must be in 0..7, got {orientation}")
        coords = numbers[:-1]
        label = OrientationLabel(orientation, _visible(coords, FRONT_KEYPOINTS), _visible(coords, REAR_KEYPOINTS))
        name = os.path.basename(fields[0])
        if name in labels and labels[name] != label:
            raise AnnotationError(f"{where}: {name} is listed again with a different label")
        labels[name] = label
    return labels
