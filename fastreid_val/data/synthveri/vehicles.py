"""SynthVeRi identities: a shared vehicle model and colour, plus details seen only from the front,
only from the rear, or only from one side, and (with shared cues) details seen from both ends.

Many identities share a model and colour (similar appearance); what tells them apart is a set of
small details. The front and rear sets are drawn independently (viewpoint variation); without
shared cues a front and a rear image of one vehicle share only model, colour and the side details
of the oblique views. :func:`share_cues` adds what real vehicles share across their ends: one plate
(colour and code) front and rear, as on VeRi-776's vehicles, and a roof item seen from every
direction (a roof box, a taxi sign, a light bar).
"""
from dataclasses import dataclass, replace
from typing import Tuple

import numpy as np

__all__ = ["Vehicle", "MODELS", "COLOURS", "sample_vehicle", "share_cues"]

Colour = Tuple[int, int, int]

# (name, side length / height, cabin start, cabin end, cabin height share, face width / height)
MODELS = (
    ("sedan", 2.6, 0.28, 0.72, 0.40, 1.45),
    ("suv", 2.2, 0.20, 0.80, 0.48, 1.30),
    ("van", 2.1, 0.08, 0.95, 0.58, 1.15),
    ("hatch", 2.1, 0.25, 0.88, 0.44, 1.35),
    ("pickup", 2.7, 0.18, 0.52, 0.45, 1.35),
    ("bus", 3.0, 0.03, 0.97, 0.62, 1.05),
)
COLOURS = ((200, 30, 30), (235, 235, 235), (25, 25, 30), (40, 70, 170), (150, 150, 155), (220, 200, 40))
LIGHT_COLOURS = ((250, 250, 235), (255, 225, 140), (200, 230, 255))
TAIL_COLOURS = ((210, 20, 20), (240, 120, 20), (120, 10, 30))
STICKER_COLOURS = ((0, 200, 80), (250, 120, 200), (0, 200, 220), (255, 150, 0), (120, 60, 200))
PLATE_COLOURS = ((30, 60, 200), (230, 200, 30), (240, 240, 240))


@dataclass(frozen=True)
class Vehicle:
    model: int
    colour: Colour
    # front-only details
    grille: int  # 0 horizontal bars, 1 vertical bars, 2 mesh, 3 solid
    grille_colour: Colour
    headlight: int  # 0 round, 1 rectangular, 2 slim
    headlight_colour: Colour
    front_plate: Colour
    front_plate_code: int  # 3-bit pattern of marks on the plate
    windshield_sticker: int  # -1 none, else position 0..2
    windshield_sticker_colour: Colour
    # rear-only details
    tail: int  # 0 bar, 1 round, 2 vertical
    tail_colour: Colour
    rear_plate: Colour
    rear_plate_code: int
    spoiler: bool
    rear_sticker: int  # -1 none, else position 0..2
    rear_sticker_colour: Colour
    # side details
    stripe: int  # -1 none, else colour index
    rims: Colour
    roof_rack: bool
    left_decal: int  # -1 none, else colour index; left side only (tells left from right)
    # seen from both ends (share_cues only; -1 = none, the independent-ends setting)
    roof_item: int = -1  # -1 none, else colour index of a box on the roof, seen from every direction
    roof_item_width: int = 0  # 0 narrow, 1 wide


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def sample_vehicle(rng: np.random.Generator, model: int, colour: Colour) -> Vehicle:
    return Vehicle(
        model=model, colour=colour,
        grille=int(rng.integers(4)), grille_colour=_pick(rng, ((20, 20, 20), (170, 170, 175), (90, 60, 40))),
        headlight=int(rng.integers(3)), headlight_colour=_pick(rng, LIGHT_COLOURS),
        front_plate=_pick(rng, PLATE_COLOURS), front_plate_code=int(rng.integers(8)),
        windshield_sticker=int(rng.integers(-1, 3)), windshield_sticker_colour=_pick(rng, STICKER_COLOURS),
        tail=int(rng.integers(3)), tail_colour=_pick(rng, TAIL_COLOURS),
        rear_plate=_pick(rng, PLATE_COLOURS), rear_plate_code=int(rng.integers(8)),
        spoiler=bool(rng.integers(2)), rear_sticker=int(rng.integers(-1, 3)),
        rear_sticker_colour=_pick(rng, STICKER_COLOURS),
        stripe=int(rng.integers(-1, len(STICKER_COLOURS))), rims=_pick(rng, ((40, 40, 40), (190, 190, 200), (200, 170, 60))),
        roof_rack=bool(rng.integers(2)), left_decal=int(rng.integers(-1, len(STICKER_COLOURS))),
    )


def share_cues(car: Vehicle, rng: np.random.Generator) -> Vehicle:
    """``car`` with the identity cues that a real vehicle shows at both ends.

    The rear plate becomes the front one (colour and code: one plate number front and rear, as on
    VeRi-776's vehicles), and a roof item drawn from ``rng`` is seen from the front, the rear, the
    sides and both oblique ends. ``rng`` is the identity's own stream for these cues, so the rest of
    the dataset (the other details, cameras, orientations, poses) is the same with and without them.
    """
    return replace(car, rear_plate=car.front_plate, rear_plate_code=car.front_plate_code,
                   roof_item=int(rng.integers(len(STICKER_COLOURS))), roof_item_width=int(rng.integers(2)))
