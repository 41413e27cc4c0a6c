"""Viewpoint-labelled datasets and loaders. Importing this module registers the datasets."""
from . import vehicleid as _vehicleid  # noqa: F401  (only registration)
from . import veri as _veri  # noqa: F401  (only registration)
from . import veriwild as _veriwild  # noqa: F401  (only registration)
from . import synthveri as _synthveri  # noqa: F401  (only registration)
from .bases import DatasetNotFoundError, ViewpointDataset
from .build import build_viewpoint_test_loader, build_viewpoint_train_loader
from .common import ViewpointCommDataset

__all__ = ["DatasetNotFoundError", "ViewpointDataset", "ViewpointCommDataset",
           "build_viewpoint_train_loader", "build_viewpoint_test_loader"]
