"""VehicleID with front/rear labels from ``vehicleid/viewpoints.txt`` and a seeded query/gallery split."""
import logging
import os
import random

from fastreid.config import CfgNode as CN
from fastreid.data.datasets import DATASET_REGISTRY

from ..errors import InvalidConfigError
from ..textfiles import text_lines

from .annotations import AnnotationError
from .bases import DatasetNotFoundError, ViewpointDataset
from .viewpoint_labels import read_viewpoint_file

logger = logging.getLogger(__name__)

__all__ = ["add_split_config", "VehicleIDViewpoint", "SmallVehicleIDViewpoint", "MediumVehicleIDViewpoint",
           "LargeVehicleIDViewpoint", "read_viewpoint_file", "split_query_gallery"]


def add_split_config(cfg):
    """``DATASETS.SPLITS``: VehicleID's random query/gallery splits (the evaluation reads ``NUM``)."""
    cfg.DATASETS.SPLITS = CN()
    # Seed of the random query/gallery split (upstream's VehicleID split is unseeded).
    cfg.DATASETS.SPLITS.SEED = 0
    # Splits whose metrics are averaged, seeds SEED, SEED + 1, ... (the paper's protocol: 10).
    cfg.DATASETS.SPLITS.NUM = 1
    return cfg


def split_query_gallery(items, seed):
    """The VehicleID protocol: one random gallery image per identity, the rest are queries (seeded)."""
    items = sorted(items)
    random.Random(seed).shuffle(items)
    seen, query, gallery = set(), [], []
    for item in items:
        if item[1] in seen:
            query.append(item)
        else:
            seen.add(item[1])
            gallery.append(item)
    return query, gallery


@DATASET_REGISTRY.register()
class VehicleIDViewpoint(ViewpointDataset):
    """VehicleID (Liu et al., CVPR 2016) in FastReID's stock layout, with viewpoints (V = 1 or 2).

    ``<root>/vehicleid/image/<imgid>.jpg``, ``train_test_split/train_list.txt`` and
    ``test_list_{800,1600,2400,13164}.txt`` (lines ``imgid vid``), and ``viewpoints.txt`` written
    by ``tools/label_viewpoints.py``. The query/gallery split is seeded by ``split_seed``.
    """

    dataset_dir = "vehicleid"
    dataset_name = "vehicleid"
    test_size = 13164
    resplit = staticmethod(split_query_gallery)  # another seeded query/gallery split of the test items
    layout_help = ("vehicleid/image/<imgid>.jpg, vehicleid/train_test_split/{train_list,test_list_N}.txt "
                   "and vehicleid/viewpoints.txt")

    @classmethod
    def config_kwargs(cls, cfg) -> dict:
        return {**super().config_kwargs(cfg), "split_seed": cfg.DATASETS.SPLITS.SEED}

    def __init__(self, root="datasets", num_viewpoints=2, missing_annotation="error", split_seed=0, **kwargs):
        if num_viewpoints not in (1, 2):
            raise InvalidConfigError(f"VehicleID has front/rear viewpoint labels only: MODEL.VAL.NUM_VIEWPOINTS must be "
                             f"1 or 2, got {num_viewpoints}")
        self.dataset_dir = os.path.join(root, self.dataset_dir)
        self.image_dir = os.path.join(self.dataset_dir, "image")
        train_list = os.path.join(self.dataset_dir, "train_test_split", "train_list.txt")
        test_list = os.path.join(self.dataset_dir, "train_test_split", f"test_list_{self.test_size}.txt")
        self.check_before_run([self.dataset_dir, self.image_dir, train_list, test_list])
        self.num_viewpoints = num_viewpoints
        labels = self._labels(missing_annotation)

        train = self.process_list(train_list, labels, is_train=True)
        test = self.process_list(test_list, labels, is_train=False)
        query, gallery = split_query_gallery(test, split_seed)
        self.report_unlabelled(self.dataset_name, "train", train)
        super().__init__(train, query, gallery, num_viewpoints=num_viewpoints,
                         flip_map=list(range(num_viewpoints)), **kwargs)

    def _labels(self, missing_annotation):
        path = os.path.join(self.dataset_dir, "viewpoints.txt")
        if os.path.exists(path):
            return read_viewpoint_file(path)
        if missing_annotation == "unknown":
            logger.warning("%s not found: VehicleID trains with viewpoint -1 for every image.", path)
            return {}
        raise DatasetNotFoundError(
            f"{type(self).__name__}: viewpoint file {path} not found; write it with tools/label_viewpoints.py, "
            "or set DATASETS.VIEWPOINT.MISSING_ANNOTATION unknown to train with unknown viewpoints.")

    def process_list(self, list_file, labels, is_train):
        data = []
        for lineno, line in enumerate(text_lines(list_file), 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                raise AnnotationError(f"{list_file}:{lineno}: expected 'imgid vid', got {line.strip()!r}")
            imgid, vid = fields
            if not (imgid.isdigit() and vid.isdigit()):  # the evaluation keys identities and images by number
                raise AnnotationError(f"{list_file}:{lineno}: image and vehicle ids must be numbers, got "
                                      f"{line.strip()!r}")
            img_path = os.path.join(self.image_dir, f"{imgid}.jpg")
            if not os.path.isfile(img_path):
                raise DatasetNotFoundError(f"{list_file}:{lineno}: listed image {img_path} does not exist")
            viewpoint = labels.get(imgid, -1) if self.num_viewpoints == 2 else 0
            if is_train:
                data.append((img_path, f"{self.dataset_name}_{vid}", f"{self.dataset_name}_{imgid}", viewpoint))
            else:
                data.append((img_path, int(vid), int(imgid), viewpoint))
        return data


@DATASET_REGISTRY.register()
class SmallVehicleIDViewpoint(VehicleIDViewpoint):
    """VehicleID, small test set (800 identities)."""
    test_size = 800


@DATASET_REGISTRY.register()
class MediumVehicleIDViewpoint(VehicleIDViewpoint):
    """VehicleID, medium test set (1,600 identities)."""
    test_size = 1600


@DATASET_REGISTRY.register()
class LargeVehicleIDViewpoint(VehicleIDViewpoint):
    """VehicleID, large test set (2,400 identities)."""
    test_size = 2400
