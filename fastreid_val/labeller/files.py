"""The labeller's files: the hand-label CSV it reads, the image lists, the labels file it writes."""
import os
from typing import List, Tuple

from ..atomic import atomic_write
from ..errors import AnnotationError
from ..textfiles import csv_rows, text_lines

__all__ = ["CANNOT_TELL", "IMAGE_EXTENSIONS", "read_labelled_csv", "read_image_list", "write_labels"]

# A hand label of -1: the person could not tell the viewpoint (tools/annotate_viewpoints.py's "cannot
# tell"). The row stays in the CSV, so that a resumed annotation knows the image was answered; the
# labeller leaves it out.
CANNOT_TELL = -1
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


def read_labelled_csv(path: str, num_viewpoints: int = 2, keep_cannot_tell: bool = False) -> List[Tuple[str, int]]:
    """``path,viewpoint`` rows (a first row ``path,viewpoint`` is a header, ``#`` lines are comments):
    viewpoint in ``0..V-1`` (V=2: 0 front, 1 rear) or :data:`CANNOT_TELL`, whose rows are left out
    unless ``keep_cannot_tell``. The labeller needs hand labels of at least two viewpoints."""
    rows = []
    for lineno, row in csv_rows(path):
        if not row or row[0].startswith("#") or (lineno == 1 and row[0].strip().lower() == "path"):
            continue
        if len(row) < 2:
            raise AnnotationError(f"{path}:{lineno}: expected 'path,viewpoint'")
        try:
            v = int(row[1])
        except ValueError:
            raise AnnotationError(f"{path}:{lineno}: viewpoint must be an integer, got {row[1]!r}") from None
        if not (0 <= v < num_viewpoints or v == CANNOT_TELL):
            raise AnnotationError(f"{path}:{lineno}: viewpoint must be in 0..{num_viewpoints - 1} or "
                                  f"{CANNOT_TELL} (cannot tell), got {v}")
        if v != CANNOT_TELL or keep_cannot_tell:
            rows.append((row[0].strip(), v))
    if not keep_cannot_tell and len({v for _, v in rows}) < 2:
        raise AnnotationError(f"{path}: needs hand labels of at least two viewpoints, got {len(rows)} rows")
    return rows


def read_image_list(path: str, image_root: str = "", ext: str = ".jpg") -> List[str]:
    """A folder (every image in it and its subfolders, sorted) or a list file: one image per line, the
    first token a path, or an id joined to ``image_root`` + ``ext``."""
    if os.path.isdir(path):
        return sorted(os.path.join(d, f) for d, _, files in os.walk(path) for f in files
                      if f.lower().endswith(IMAGE_EXTENSIONS))
    out = []
    for line in text_lines(path):
        if line.strip():
            token = line.split()[0]
            out.append(os.path.join(image_root, token + ext) if image_root else token)
    return out


def write_labels(path: str, labelled) -> None:
    """Atomic write of ``imgid viewpoint confidence`` lines."""
    text = "".join(f"{os.path.splitext(os.path.basename(p))[0]} {v} {c:.4f}\n" for p, v, c in labelled)
    atomic_write(path, lambda f: f.write(text.encode()))
