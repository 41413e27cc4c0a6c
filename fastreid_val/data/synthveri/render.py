"""Drawing one SynthVeRi image: a vehicle at one of VeRi's 8 orientations, seen by one camera.

Faces are drawn in a box (x0, y0, w, h); positions inside it are fractions of the box. Returns the
image and the image coordinates of VeRi's 20 keypoints, ``(-1, -1)`` for those not visible.
Keypoints (1-based): 1-4 wheels (LF, LB, RF, RB), 5/6 right/left fog lamp, 7/8 right/left headlight,
9 front logo, 10 front plate, 11/12 left/right mirror, 13/14 right/left front roof corner,
15/16 left/right back roof corner, 17/18 left/right rear lamp, 19 rear logo, 20 rear plate.
"""
from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .vehicles import MODELS, STICKER_COLOURS, Vehicle

__all__ = ["Camera", "render"]

Point = Tuple[float, float]
WINDOW = (45, 55, 75)
DARK = (20, 20, 22)


@dataclass(frozen=True)
class Camera:
    background: Tuple[int, int, int]
    gain: float  # illumination
    cast: Tuple[float, float, float]  # colour cast per channel
    blur: float  # Gaussian blur radius in output pixels
    scale: float  # vehicle size relative to the frame
    occlusion: float  # probability of a partial occlusion


class _Face:
    """Coordinate helper: fractions of a box -> canvas pixels; ``mirror`` flips x inside the box."""

    def __init__(self, draw, x0, y0, w, h, mirror=False):
        self.d, self.x0, self.y0, self.w, self.h, self.mirror = draw, x0, y0, w, h, mirror

    def p(self, u, v) -> Point:
        u = 1 - u if self.mirror else u
        return (self.x0 + u * self.w, self.y0 + v * self.h)

    def rect(self, u0, v0, u1, v1, fill):
        (a, b), (c, e) = self.p(u0, v0), self.p(u1, v1)
        self.d.rectangle((min(a, c), min(b, e), max(a, c), max(b, e)), fill=fill)

    def ellipse(self, u, v, ru, rv, fill):
        x, y = self.p(u, v)
        self.d.ellipse((x - ru * self.w, y - rv * self.h, x + ru * self.w, y + rv * self.h), fill=fill)

    def poly(self, pts, fill):
        self.d.polygon([self.p(u, v) for u, v in pts], fill=fill)


def _plate(f, u0, v0, u1, v1, colour, code):
    f.rect(u0, v0, u1, v1, colour)
    for bit in range(3):  # identity-specific marks on the plate
        if code >> bit & 1:
            a = u0 + (u1 - u0) * (0.12 + 0.3 * bit)
            f.rect(a, v0 + 0.25 * (v1 - v0), a + 0.18 * (u1 - u0), v1 - 0.25 * (v1 - v0), DARK)


def _roof_item(f: _Face, car: Vehicle, u: float, half_widths: Tuple[float, float]):
    """The roof item (shared cues), centred at ``u`` on the roof line (v = 0), if the vehicle has one."""
    if car.roof_item >= 0:
        hw = half_widths[car.roof_item_width]
        f.rect(u - hw, -0.09, u + hw, 0.0, STICKER_COLOURS[car.roof_item])


def _front(f: _Face, car: Vehicle, kp: Dict[int, Point]):
    _roof_item(f, car, 0.5, (0.14, 0.26))
    f.rect(0, 0.36, 1, 0.97, car.colour)
    f.poly([(0.16, 0.0), (0.84, 0.0), (0.95, 0.38), (0.05, 0.38)], car.colour)
    f.poly([(0.21, 0.05), (0.79, 0.05), (0.88, 0.35), (0.12, 0.35)], WINDOW)
    if car.windshield_sticker >= 0:
        u = 0.25 + 0.22 * car.windshield_sticker
        f.rect(u, 0.09, u + 0.13, 0.2, car.windshield_sticker_colour)
    g0, g1 = (0.32, 0.46), (0.68, 0.66)
    f.rect(g0[0], g0[1], g1[0], g1[1], car.grille_colour)
    if car.grille in (0, 2):
        for k in range(1, 4):
            v = g0[1] + k * (g1[1] - g0[1]) / 4
            f.rect(g0[0], v - 0.012, g1[0], v + 0.012, car.colour)
    if car.grille in (1, 2):
        for k in range(1, 5):
            u = g0[0] + k * (g1[0] - g0[0]) / 5
            f.rect(u - 0.012, g0[1], u + 0.012, g1[1], car.colour)
    for side, u in ((7, 0.18), (8, 0.82)):  # headlights: right one is on the image left
        if car.headlight == 0:
            f.ellipse(u, 0.52, 0.08, 0.07, car.headlight_colour)
        elif car.headlight == 1:
            f.rect(u - 0.11, 0.46, u + 0.11, 0.58, car.headlight_colour)
        else:
            f.rect(u - 0.13, 0.49, u + 0.13, 0.54, car.headlight_colour)
        kp[side] = f.p(u, 0.52)
    for side, u in ((5, 0.14), (6, 0.86)):
        f.ellipse(u, 0.8, 0.035, 0.035, (250, 250, 200))
        kp[side] = f.p(u, 0.8)
    f.ellipse(0.5, 0.41, 0.03, 0.03, (200, 200, 210))
    kp[9] = f.p(0.5, 0.41)
    _plate(f, 0.37, 0.72, 0.63, 0.87, car.front_plate, car.front_plate_code)
    kp[10] = f.p(0.5, 0.8)
    f.rect(0.04, 0.92, 0.2, 1.0, DARK)
    f.rect(0.8, 0.92, 0.96, 1.0, DARK)
    kp[13], kp[14] = f.p(0.16, 0.0), f.p(0.84, 0.0)
    kp[12], kp[11] = f.p(0.0, 0.36), f.p(1.0, 0.36)


def _rear(f: _Face, car: Vehicle, kp: Dict[int, Point]):
    _roof_item(f, car, 0.5, (0.14, 0.26))
    f.rect(0, 0.36, 1, 0.97, car.colour)
    f.poly([(0.14, 0.0), (0.86, 0.0), (0.95, 0.38), (0.05, 0.38)], car.colour)
    f.poly([(0.2, 0.06), (0.8, 0.06), (0.87, 0.33), (0.13, 0.33)], WINDOW)
    if car.spoiler:
        f.rect(0.08, 0.0, 0.92, 0.06, DARK)
    for side, u in ((17, 0.17), (18, 0.83)):  # viewer behind: vehicle's left on the image left
        if car.tail == 0:
            f.rect(u - 0.14, 0.47, u + 0.14, 0.56, car.tail_colour)
        elif car.tail == 1:
            f.ellipse(u, 0.52, 0.07, 0.07, car.tail_colour)
        else:
            f.rect(u - 0.05, 0.42, u + 0.05, 0.66, car.tail_colour)
        kp[side] = f.p(u, 0.52)
    f.ellipse(0.5, 0.5, 0.03, 0.03, (200, 200, 210))
    kp[19] = f.p(0.5, 0.5)
    _plate(f, 0.37, 0.66, 0.63, 0.8, car.rear_plate, car.rear_plate_code)
    kp[20] = f.p(0.5, 0.73)
    if car.rear_sticker >= 0:
        u = 0.12 + 0.3 * car.rear_sticker
        f.rect(u, 0.85, u + 0.16, 0.93, car.rear_sticker_colour)
    f.rect(0.04, 0.92, 0.2, 1.0, DARK)
    f.rect(0.8, 0.92, 0.96, 1.0, DARK)
    kp[15], kp[16] = f.p(0.14, 0.0), f.p(0.86, 0.0)


def _side(f: _Face, car: Vehicle, left: bool, kp: Dict[int, Point], rng, show_ends: bool):
    """Side profile, front at u=0 (``f.mirror`` puts the front on the right)."""
    _, _, c0, c1, ch, _ = MODELS[car.model]
    f.rect(0, ch, 1, 0.86, car.colour)
    f.poly([(c0, ch), (c0 + 0.08, 0.0), (c1 - 0.05, 0.0), (c1, ch)], car.colour)
    f.poly([(c0 + 0.04, ch - 0.03), (c0 + 0.1, 0.06), (c1 - 0.07, 0.06), (c1 - 0.03, ch - 0.03)], WINDOW)
    if car.roof_rack:
        f.rect(c0 + 0.1, -0.05, c1 - 0.08, 0.0, DARK)
    _roof_item(f, car, (c0 + c1) / 2, (0.07, 0.14))
    if car.stripe >= 0:
        f.rect(0.02, 0.6, 0.98, 0.66, STICKER_COLOURS[car.stripe])
    if left and car.left_decal >= 0:
        f.rect(0.55, ch + 0.08, 0.75, ch + 0.22, STICKER_COLOURS[car.left_decal])
    wheels = (1, 2) if left else (3, 4)
    for k, u in zip(wheels, (0.18, 0.82)):
        f.ellipse(u, 0.86, 0.08, 0.14, DARK)
        f.ellipse(u, 0.86, 0.035, 0.06, car.rims)
        kp[k] = f.p(u, 0.86)
    kp[11 if left else 12] = f.p(c0 + 0.02, ch)
    kp[14 if left else 13] = f.p(c0 + 0.08, 0.0)
    kp[15 if left else 16] = f.p(c1 - 0.05, 0.0)
    if show_ends and rng.random() < 0.5:  # the near headlight at the front end
        f.rect(0.0, ch + 0.05, 0.05, ch + 0.15, car.headlight_colour)
        kp[8 if left else 7] = f.p(0.02, ch + 0.1)
    if show_ends and rng.random() < 0.4:  # the near rear lamp at the back end
        f.rect(0.95, ch + 0.05, 1.0, ch + 0.15, car.tail_colour)
        kp[17 if left else 18] = f.p(0.98, ch + 0.1)


def _vehicle(draw, car: Vehicle, orientation: int, box, rng) -> Dict[int, Point]:
    """Draw the vehicle in ``box`` = (x0, y0, w, h) at a VeRi orientation code."""
    x0, y0, w, h = box
    kp: Dict[int, Point] = {}
    _, length, _, _, _, face = MODELS[car.model]
    if orientation in (0, 1):
        fw = min(w, h * face)
        f = _Face(draw, x0 + (w - fw) / 2, y0, fw, h)
        (_front if orientation == 0 else _rear)(f, car, kp)
    elif orientation in (2, 5):
        sw = min(w, h * length * 0.8)
        f = _Face(draw, x0 + (w - sw) / 2, y0, sw, h, mirror=orientation == 5)
        _side(f, car, orientation == 2, kp, rng, show_ends=True)
    else:
        left = orientation in (3, 4)
        front = orientation in (3, 6)
        fw, sw = 0.42 * w, 0.58 * w
        face_first = orientation in (3, 7)  # [front | left side], [rear | right side]
        fx, sx = (x0, x0 + fw) if face_first else (x0 + sw, x0)
        # the side's end that touches the face: front end for 3/6, rear end for 4/7
        mirror = (not face_first) if front else face_first
        _side(_Face(draw, sx, y0 + 0.04 * h, sw, 0.96 * h, mirror=mirror), car, left, kp, rng, show_ends=False)
        (_front if front else _rear)(_Face(draw, fx, y0, fw, h), car, kp)
    return kp


def render(car: Vehicle, orientation: int, camera: Camera, rng: np.random.Generator,
           size: Tuple[int, int]) -> Tuple[Image.Image, List[Point]]:
    """One image of ``size`` (width, height) and its 20 keypoints (``(-1, -1)`` when hidden)."""
    out_w, out_h = size
    ss = 2  # supersampling factor
    W, H = out_w * ss, out_h * ss
    # Background: the camera's tint mixed with a per-image scene colour, so that a camera is not
    # recognisable from its background alone (otherwise camera becomes a shortcut for identity).
    scene = rng.integers(40, 220, 3)
    base = 0.35 * np.array(camera.background) + 0.65 * scene
    bg = np.clip(base + rng.normal(0, 8, (H, W, 3)), 0, 255)
    bg[int(H * rng.uniform(0.5, 0.85)):] *= rng.uniform(0.6, 0.95)  # road
    img = Image.fromarray(bg.astype(np.uint8))
    draw = ImageDraw.Draw(img)
    scale = camera.scale * rng.uniform(0.9, 1.05)
    w, h = W * 0.9 * scale, H * 0.62 * scale
    x0 = (W - w) / 2 + rng.uniform(-0.06, 0.06) * W  # crop jitter
    y0 = (H - h) / 2 + rng.uniform(-0.06, 0.06) * H
    kp = _vehicle(draw, car, orientation, (x0, y0, w, h), rng)
    if rng.random() < camera.occlusion:  # a pole or another vehicle hides part of it
        ow = W * rng.uniform(0.12, 0.3)
        ox = rng.uniform(0, W - ow)
        draw.rectangle((ox, 0, ox + ow, H), fill=tuple(int(c * 0.7) for c in camera.background))
        kp = {k: p for k, p in kp.items() if not ox <= p[0] <= ox + ow}
    img = img.resize((out_w, out_h), Image.BILINEAR)
    if camera.blur > 0:
        img = img.filter(ImageFilter.GaussianBlur(camera.blur))
    arr = np.asarray(img, dtype=np.float32) * camera.gain * np.array(camera.cast, dtype=np.float32)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    points = []
    for k in range(1, 21):
        if k in kp and 0 <= kp[k][0] < W and 0 <= kp[k][1] < H:
            points.append((int(kp[k][0] / ss), int(kp[k][1] / ss)))
        else:
            points.append((-1, -1))
    return img, points
