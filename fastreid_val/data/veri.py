"""VeRi-776 with viewpoints from its published orientation annotation (``VeRiViewpoint``)."""
import glob
import logging
import os
import re

from fastreid.data.datasets import DATASET_REGISTRY

from .annotations import AnnotationError, read_keypoint_file
from .bases import DatasetNotFoundError, ViewpointDataset
from .viewpoints import check_supported_v, orientation_to_viewpoint, viewpoint_flip_map

logger = logging.getLogger(__name__)

__all__ = ["VeRiViewpoint"]

_NAME = re.compile(r"^(\d+)_c(\d+)_")


@DATASET_REGISTRY.register()
class VeRiViewpoint(ViewpointDataset):
    """VeRi-776 (Liu et al., ECCV 2016) in FastReID's stock layout, with viewpoint labels.

    ``<root>/veri/image_{train,query,test}/PPPP_cCCC_FFFFFFFF_0.jpg`` and the keypoint annotation
    ``keypoint_train.txt`` / ``keypoint_test.txt`` (Wang et al., ICCV 2017) in the same folder.
    Identities and cameras come from file names, exactly as FastReID's ``VeRi``.
    """

    dataset_dir = "veri"
    dataset_name = "veri"
    layout_help = "veri/image_train, veri/image_query, veri/image_test (*.jpg) and veri/keypoint_{train,test}.txt"

    def __init__(self, root="datasets", num_viewpoints=2, missing_annotation="error", **kwargs):
        check_supported_v(num_viewpoints)
        self.root = root
        self.dataset_dir = os.path.join(root, self.dataset_dir)
        self.prepare()
        train_dir, query_dir, test_dir = (os.path.join(self.dataset_dir, d)
                                          for d in ("image_train", "image_query", "image_test"))
        self.check_before_run([self.dataset_dir, train_dir, query_dir, test_dir])
        self.num_viewpoints = num_viewpoints
        self.missing_annotation = missing_annotation

        train_labels = self._labels("keypoint_train.txt")
        test_labels = self._labels("keypoint_test.txt")
        train = self.process_dir(train_dir, train_labels, is_train=True)
        query = self.process_dir(query_dir, test_labels, is_train=False)
        gallery = self.process_dir(test_dir, test_labels, is_train=False)
        if not train:
            raise DatasetNotFoundError(f"{type(self).__name__}: no *.jpg images in {train_dir}. "
                                       f"Expected layout: {self.layout_help}.")
        self.report_unlabelled(self.dataset_name, "train", train)
        self.report_unlabelled(self.dataset_name, "test", query + gallery)
        super().__init__(train, query, gallery, num_viewpoints=num_viewpoints,
                         flip_map=viewpoint_flip_map(num_viewpoints), **kwargs)

    def prepare(self):
        """Hook for datasets that create their files on first use (SynthVeRi)."""

    def _labels(self, file_name):
        path = os.path.join(self.dataset_dir, file_name)
        if os.path.exists(path):
            return read_keypoint_file(path)
        if self.missing_annotation == "unknown":
            logger.warning("%s not found: every image of that split trains with viewpoint -1 "
                           "(DATASETS.VIEWPOINT.MISSING_ANNOTATION=unknown).", path)
            return {}
        raise DatasetNotFoundError(
            f"{type(self).__name__}: annotation file {path} not found (VeRi-776 keypoint/orientation labels). "
            "Set DATASETS.VIEWPOINT.MISSING_ANNOTATION unknown to train with unknown viewpoints instead.")

    def process_dir(self, dir_path, labels, is_train=True):
        data = []
        for img_path in sorted(glob.glob(os.path.join(dir_path, "*.jpg"))):
            name = os.path.basename(img_path)
            match = _NAME.match(name)
            if match is None:
                raise AnnotationError(f"{img_path}: file name must look like PPPP_cCCC_FFFFFFFF_0.jpg")
            pid, camid = map(int, match.groups())  # the pattern admits no negative (junk) identity
            camid -= 1
            label = labels.get(name)
            viewpoint = -1 if label is None else orientation_to_viewpoint(
                label.orientation, self.num_viewpoints, label.visible_front, label.visible_rear)
            if is_train:
                pid, camid = f"{self.dataset_name}_{pid}", f"{self.dataset_name}_{camid}"
            data.append((img_path, pid, camid, viewpoint))
        return data
