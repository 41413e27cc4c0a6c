"""``ViewpointCommDataset``: FastReID's ``CommDataset`` that also returns each image's viewpoint, and
:func:`read_user_image`, FastReID's image reader with one line for a file that does not decode."""
import torch
from fastreid.data.common import CommDataset
from fastreid.data.data_utils import read_image
from PIL import Image, UnidentifiedImageError

from ..errors import UnreadableImageError

__all__ = ["ViewpointCommDataset", "camera_number", "item_viewpoint", "read_user_image"]


def read_user_image(path, mode="RGB"):
    """FastReID's ``read_image(path, mode)``; a file that does not decode stops with
    :class:`UnreadableImageError` naming it and why (not an image, cut short, or more pixels than Pillow's
    decompression-bomb limit allows)."""
    try:
        return read_image(path, mode)
    except Image.DecompressionBombError as e:
        size = str(e.args[0]).split(" could be")[0].rstrip(" ,.")
        raise UnreadableImageError(f"cannot read image {path} ({size}: a decompression bomb, or an image too large "
                                   "to decode): resize it or remove it") from None
    except (OSError, ValueError, SyntaxError) as e:
        reason = "not an image format PIL can decode" if isinstance(e, UnidentifiedImageError) else e
        raise UnreadableImageError(f"cannot read image {path} ({reason}): replace it or remove it") from None


def item_viewpoint(item) -> int:
    """Viewpoint of a dataset item: its fourth element, or -1 for stock 3-tuples."""
    return item[3] if len(item) > 3 else -1


def camera_number(camid):
    """The dataset's own number of a camera: a test item's ``camid`` as it is, a training item's
    ``"<dataset>_<camid>"`` (FastReID's naming) read back to its number; another name: None."""
    if isinstance(camid, int):
        return camid
    _, _, number = str(camid).rpartition("_")
    return int(number) if number.lstrip("-").isdigit() else None


class ViewpointCommDataset(CommDataset):
    """Returns ``viewpoints`` beside ``images``, ``targets``, ``camids``, ``img_paths``.

    Args:
        img_items: ``(img_path, pid, camid[, viewpoint])`` tuples.
        transform: image transform, built *without* random flip when ``flip_prob > 0``.
        flip_prob: probability of a horizontal flip applied here, before ``transform``, so that the
            viewpoint label flips with the image (``flip_map``).
        flip_map: permutation of viewpoint labels under a flip.

    Training ``camids`` are the dataset's own camera numbers (:func:`camera_number`), as at test time, not
    FastReID's relabelling (``cam_dict``: the rank of ``"<dataset>_<camid>"`` among sorted strings, where
    camera 10 comes before camera 2), so that a camera's side information embedding (SIE) is the same
    vector in training and evaluation. Names that carry no number keep FastReID's relabelling.
    """

    def __init__(self, img_items, transform=None, relabel=True, flip_prob=0.0, flip_map=None):
        super().__init__(img_items, transform, relabel)
        if relabel and all(camera_number(c) is not None for c in self.cams):
            self.cam_dict = {c: camera_number(c) for c in self.cams}
        if flip_prob > 0 and flip_map is None:
            raise ValueError("random flip needs a viewpoint flip map (flip_map)")
        self.flip_prob = flip_prob
        self.flip_map = flip_map

    def read(self, index):
        """The image of item ``index`` (a PIL image, decoded from its file)."""
        return read_user_image(self.img_items[index][0])

    def flip_image(self, img):
        return img.transpose(Image.FLIP_LEFT_RIGHT)

    def __getitem__(self, index):
        img_path, pid, camid = self.img_items[index][:3]
        viewpoint = item_viewpoint(self.img_items[index])
        img = self.read(index)
        if self.flip_prob > 0 and torch.rand(()).item() < self.flip_prob:
            img = self.flip_image(img)
            if viewpoint >= 0:
                viewpoint = self.flip_map[viewpoint]
        if self.transform is not None:
            img = self.transform(img)
        if self.relabel:
            pid = self.pid_dict[pid]
            camid = self.cam_dict[camid]
        return {"images": img, "targets": pid, "camids": camid, "viewpoints": viewpoint, "img_paths": img_path}
