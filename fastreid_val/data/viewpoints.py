"""Viewpoints from VeRi-776's 8 orientation labels (Wang et al., ICCV 2017), for V = 1, 2, 4, 8.

Orientation codes: 0 front, 1 rear, 2 left, 3 left-front, 4 left-rear, 5 right, 6 right-front,
7 right-rear. Keypoints are numbered 1..20; 5-10 are front parts (fog lamps, headlights, front logo,
front plate) and 17-20 rear parts (rear lamps, rear logo, rear plate).
"""
from typing import Dict, List, Optional, Sequence

from ..errors import InvalidConfigError

__all__ = [
    "ORIENTATIONS", "ORIENTATION_FLIP", "FRONT_KEYPOINTS", "REAR_KEYPOINTS", "SUPPORTED_V",
    "orientation_to_viewpoint", "viewpoint_flip_map", "VIEWPOINT_NAMES", "check_supported_v",
]

ORIENTATIONS = ("front", "rear", "left", "left-front", "left-rear", "right", "right-front", "right-rear")
# A horizontal flip mirrors left and right.
ORIENTATION_FLIP = (0, 1, 5, 6, 7, 2, 3, 4)
FRONT_KEYPOINTS = tuple(range(5, 11))  # 1-based keypoint numbers
REAR_KEYPOINTS = tuple(range(17, 21))
SUPPORTED_V = (1, 2, 4, 8)

_FRONTISH = {0, 3, 6}
_REARISH = {1, 4, 7}
_SIDES = {2, 5}

VIEWPOINT_NAMES: Dict[int, Sequence[str]] = {
    1: ("any",),
    2: ("front", "rear"),
    4: ("front", "rear", "front-oblique", "rear-oblique"),
    8: ORIENTATIONS,
}


def check_supported_v(num_viewpoints: int) -> None:
    """Refuse a V that VeRi's orientation labels cannot give, naming the key."""
    if num_viewpoints not in SUPPORTED_V:
        raise InvalidConfigError(f"MODEL.VAL.NUM_VIEWPOINTS={num_viewpoints} cannot be derived from VeRi orientations; "
                                 f"supported: {', '.join(map(str, SUPPORTED_V))}")


def _side_faces_front(visible_front: int, visible_rear: int) -> bool:
    # A pure side view joins the end of the vehicle it shows more of; ties go to front.
    return visible_front >= visible_rear


def orientation_to_viewpoint(orientation: int, num_viewpoints: int, visible_front: int = 0,
                             visible_rear: int = 0) -> int:
    """Viewpoint subclass in ``0..V-1`` of one image.

    * V=1: 0.
    * V=2: front {0, 3, 6} -> 0, rear {1, 4, 7} -> 1; a pure side {2, 5} -> front when it shows at
      least as many front keypoints (5-10) as rear ones (17-20), else rear.
    * V=4 (our choice, flip-invariant): 0 front {0}, 1 rear {1}, 2 front-oblique {3, 6},
      3 rear-oblique {4, 7}; a pure side goes to front-oblique or rear-oblique by the keypoint rule.
      Splitting by head-on/oblique rather than left/right keeps V=4 labels valid under the random
      flip of the paper's recipe.
    * V=8: the orientation itself (changes under a horizontal flip, see :func:`viewpoint_flip_map`).
    """
    if not 0 <= orientation <= 7:
        raise ValueError(f"orientation must be in 0..7, got {orientation}")
    check_supported_v(num_viewpoints)
    if num_viewpoints == 1:
        return 0
    if num_viewpoints == 8:
        return orientation
    if orientation in _SIDES:
        front = _side_faces_front(visible_front, visible_rear)
        if num_viewpoints == 2:
            return 0 if front else 1
        if num_viewpoints == 4:
            return 2 if front else 3
    if num_viewpoints == 2:
        return 0 if orientation in _FRONTISH else 1
    return {0: 0, 1: 1, 3: 2, 6: 2, 4: 3, 7: 3}[orientation]  # V = 4


def viewpoint_flip_map(num_viewpoints: int) -> Optional[List[int]]:
    """Permutation of viewpoint labels under a horizontal image flip (identity when flip-invariant)."""
    if num_viewpoints == 8:
        return list(ORIENTATION_FLIP)
    if num_viewpoints in (1, 2, 4):
        return list(range(num_viewpoints))
    return None
