"""What the user looks at before training on the labels: the held-out confusion matrix and a contact
sheet of labelled images per predicted viewpoint, with their confidence."""
import csv
import io
import random
from typing import List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

from ..atomic import atomic_write
from ..data.viewpoints import VIEWPOINT_NAMES

__all__ = ["viewpoint_names", "confusion_matrix", "format_confusion", "write_confusion", "contact_sheet"]


def viewpoint_names(num_viewpoints: int) -> List[str]:
    """The viewpoint rule's names (``data/viewpoints.py``: V=2 front, rear), else ``viewpoint k``."""
    return list(VIEWPOINT_NAMES.get(num_viewpoints, [f"viewpoint {k}" for k in range(num_viewpoints)]))


def confusion_matrix(truth: Sequence[int], predicted: Sequence[int], num_viewpoints: int) -> np.ndarray:
    """[V, V] counts: row = hand label, column = the labeller's viewpoint."""
    m = np.zeros((num_viewpoints, num_viewpoints), dtype=int)
    np.add.at(m, (np.asarray(truth, dtype=int), np.asarray(predicted, dtype=int)), 1)
    return m


def format_confusion(m: np.ndarray) -> str:
    """The matrix as aligned text, rows hand labels, columns the labeller's."""
    names = viewpoint_names(len(m))
    width = max(len(n) for n in names + [str(m.max())]) + 2
    lines = ["held-out hand labels (rows) against the labeller (columns):",
             " " * width + "".join(n.rjust(width) for n in names)]
    lines += [names[i].ljust(width) + "".join(str(c).rjust(width) for c in row) for i, row in enumerate(m)]
    return "\n".join(lines)


def write_confusion(path: str, m: np.ndarray) -> None:
    """CSV: a header of the labeller's viewpoints, then one row per hand label."""
    names = viewpoint_names(len(m))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["hand label \\ labeller", *names])
    w.writerows([names[i], *row.tolist()] for i, row in enumerate(m))
    atomic_write(path, lambda f: f.write(buf.getvalue().encode()))


def _tile(path: str, confidence: float, size: int) -> Image.Image:
    """The image fitted into ``size`` x ``size`` (small images enlarged without smoothing), its confidence under it."""
    tile = Image.new("RGB", (size, size + 14), "white")
    img = Image.open(path).convert("RGB")
    scale = size / max(img.size)
    img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                     Image.NEAREST if scale > 1 else Image.BILINEAR)
    tile.paste(img, ((size - img.width) // 2, (size - img.height) // 2))
    ImageDraw.Draw(tile).text((4, size + 1), f"{confidence:.2f}", fill="black")
    return tile


def contact_sheet(path: str, labelled: Sequence[Tuple[str, int, float]], num_viewpoints: int, per_row: int = 10,
                  size: int = 96, seed: int = 0) -> None:
    """PNG: for each predicted viewpoint, a row of random images and a row of its least confident ones,
    each with the labeller's confidence under it."""
    rng = random.Random(seed)
    names = viewpoint_names(num_viewpoints)
    rows = []
    for v in range(num_viewpoints):
        mine = [it for it in labelled if it[1] == v]
        random_pick = rng.sample(mine, min(per_row, len(mine)))
        least = sorted(mine, key=lambda it: it[2])[:per_row]
        rows.append((f"{names[v]}: {len(mine)} images, random", random_pick))
        rows.append((f"{names[v]}: least confident", least))
    label_h, tile_h = 16, size + 14
    sheet = Image.new("RGB", (per_row * (size + 4) + 4, len(rows) * (label_h + tile_h + 4) + 4), "white")
    draw = ImageDraw.Draw(sheet)
    y = 4
    for caption, items in rows:
        draw.text((4, y + 2), caption, fill="black")
        for i, (p, _, c) in enumerate(items):
            sheet.paste(_tile(p, c, size), (4 + i * (size + 4), y + label_h))
        y += label_h + tile_h + 4
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    atomic_write(path, lambda f: f.write(buf.getvalue()))
