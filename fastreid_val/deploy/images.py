"""Images for export checks and search: listing a folder or a list file, reading them as FastReID does,
and the identity written in VeRi-style file names."""
import os
import re

import torch

from ..data.common import read_user_image
from ..errors import EmptyGalleryError, MissingFileError

__all__ = ["IMAGE_EXTENSIONS", "list_images", "read_images", "check_images", "veri_identity"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
_VERI_NAME = re.compile(r"^(\d+)_c(\d+)_")


def list_images(source, what="gallery"):
    """Absolute paths of the images in ``source``: a folder (searched recursively, sorted), a list
    file (one path per line, relative to the list's folder; blank lines and ``#`` comments skipped)
    or a single image. ``what`` names the argument in messages.
    """
    if not os.path.exists(source):
        raise MissingFileError(f"{what} {source} does not exist: give an image, a folder of images or a list file")
    if os.path.isdir(source):
        paths = sorted(os.path.join(root, name) for root, _, names in os.walk(source) for name in names
                       if name.lower().endswith(IMAGE_EXTENSIONS))
        if not paths:
            raise EmptyGalleryError(f"{what} folder {source} holds no image ({', '.join(IMAGE_EXTENSIONS)}): "
                                    "point it at a folder of images")
        return [os.path.abspath(p) for p in paths]
    if source.lower().endswith(IMAGE_EXTENSIONS):
        return [os.path.abspath(source)]
    return _read_list(source, what)


def _read_list(path, what):
    folder = os.path.dirname(os.path.abspath(path))
    paths = []
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise MissingFileError(f"{what} list {path} cannot be read ({e}): give a folder of images or a text file "
                               "with one image path per line") from None
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        image = os.path.abspath(os.path.join(folder, line))
        if not os.path.isfile(image):
            raise MissingFileError(f"{path}:{number}: listed image {image} does not exist: fix or remove the line")
        paths.append(image)
    if not paths:
        raise EmptyGalleryError(f"{what} list {path} lists no image: one image path per line")
    return paths


def read_images(paths, transform):
    """[N, 3, H, W] float tensor of ``paths`` through ``transform`` (FastReID's test transform).

    Read with FastReID's ``read_image`` in RGB, as its datasets read them. A missing or unreadable
    file stops with its name.
    """
    images = []
    for path in paths:
        if not os.path.isfile(path):
            raise MissingFileError(f"image {path} does not exist")
        images.append(transform(read_user_image(path)))
    return torch.stack(images).float()


def check_images(paths):
    """Stop on the first of ``paths`` that is missing or whose header Pillow cannot read (or that is past
    its decompression-bomb limit), before anything is written; an image damaged past its header stops
    later, when it is embedded, with :func:`read_user_image`'s line."""
    from PIL import Image

    for path in paths:
        if not os.path.isfile(path):
            raise MissingFileError(f"image {path} does not exist")
        try:
            with Image.open(path) as image:
                image.size
        except (Image.DecompressionBombError, OSError, ValueError, SyntaxError):
            read_user_image(path)  # raises its one line for this file


def veri_identity(path):
    """The identity of a VeRi-style file name (``0002_c002_00030600_0.jpg`` -> ``"0002"``), else None."""
    match = _VERI_NAME.match(os.path.basename(path))
    return match.group(1) if match else None
