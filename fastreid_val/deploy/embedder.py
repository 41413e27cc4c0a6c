"""Embedders: images -> L2-normalised features, from a PyTorch checkpoint or an exported ONNX file.

Both read and transform images the same way (FastReID's ``read_image`` and test transform, see
:mod:`fastreid_val.deploy.model`) and carry the same fingerprint for the same weights, so a search
index built with one can be queried with the other.

Shape legend: N images, d embedding dimension.
"""
import json
import os

import numpy as np
import torch
from tqdm import tqdm

from ..errors import MissingFileError, ModelFileError
from .cameras import UNKNOWN_CAMERA, model_camera, model_cameras
from .images import read_images
from .metadata import name_metadata
from .model import fingerprint, image_transform, inference_config, input_shape, load_model, preprocessing, takes_camera

__all__ = ["Embedder", "TorchEmbedder", "OnnxEmbedder", "open_embedder", "camera_of", "UNKNOWN_CAMERA"]



def camera_of(path, cameras=None):
    """The camera number a model with SIE was trained with, read from a VeRi-style file name (``c001`` is 0;
    :mod:`.cameras`); :data:`UNKNOWN_CAMERA` for any other name (a user's photo) or a camera past
    ``cameras``."""
    return model_camera(name_metadata(str(path)).camera, cameras)


class Embedder:
    """``embed(paths)`` -> [N, d] float32 unit vectors. Subclasses set ``prep`` (the preprocessing
    dict), ``dim``, ``fingerprint``, ``description``, ``cameras`` (the model's SIE camera count: 0 without
    SIE, None where a model with SIE does not say) and implement ``_forward(images, camids)`` -> [N, d]."""

    prep, dim, fingerprint, description, cameras = None, None, None, None, 0

    @property
    def takes_camera(self):
        """Whether the features depend on the camera given (a model with camera side information)."""
        return self.cameras != 0

    def embed(self, paths, batch_size=32, progress=False, desc="embedding", camids=None):
        """``camids``: each image's camera (the dataset's number; -1 unknown) for a model with camera side
        information (SIE); None: read from the file names where they are VeRi-776's, unknown (-1) elsewhere
        (:func:`camera_of`), which such a model embeds with the mean of its cameras' vectors. Models
        without SIE ignore them."""
        transform = image_transform(self.prep)
        out = np.zeros((len(paths), self.dim), dtype=np.float32)
        cams = np.asarray([camera_of(p, self.cameras) for p in paths] if camids is None else camids, dtype=np.int64)
        with tqdm(total=len(paths), desc=desc, unit="img", disable=not progress, dynamic_ncols=True) as bar:
            for start in range(0, len(paths), batch_size):
                chunk = paths[start:start + batch_size]
                out[start:start + len(chunk)] = self._forward(read_images(chunk, transform),
                                                              cams[start:start + len(chunk)])
                bar.update(len(chunk))
        return _unit(out)

    def embed_images(self, images, camids=None):
        """[N, d] unit vectors of decoded RGB PIL images (an upload), read as :meth:`embed` reads files;
        ``camids`` as there, None: every camera unknown."""
        transform = image_transform(self.prep)
        batch = torch.stack([transform(image) for image in images]).float()
        cams = np.full(len(images), UNKNOWN_CAMERA, np.int64) if camids is None else np.asarray(camids, np.int64)
        return _unit(self._forward(batch, cams).astype(np.float32))

    def model_cameras(self, names, what="gallery"):
        """The camera numbers this model is given for camera names (:func:`.cameras.model_cameras`)."""
        return model_cameras(names, self.cameras, what)

    def _forward(self, images, camids=None):
        raise NotImplementedError

    def identity(self):
        return {"fingerprint": self.fingerprint, "dim": self.dim, "model": self.description}


class TorchEmbedder(Embedder):
    """A FastReID model from its config and checkpoint, on ``MODEL.DEVICE``."""

    def __init__(self, config_file, weights, opts=(), device=None):
        cfg = inference_config(config_file, weights, opts, device)
        self.model = load_model(cfg, config_file=config_file)
        self.prep = preprocessing(cfg)
        self.fingerprint = fingerprint(cfg)
        self.description = f"{weights} ({config_file})"
        self.device = torch.device(cfg.MODEL.DEVICE)
        self.cameras = self.model.backbone.cameras if takes_camera(self.model) else 0
        self.dim = int(self._forward(torch.zeros(1, 3, *input_shape(self.prep))).shape[1])

    @classmethod
    def from_model(cls, model, prep, fingerprint, description):
        """An embedder of a model already built and loaded (eval mode), e.g. one being trained or tested."""
        self = cls.__new__(cls)
        self.model, self.prep, self.fingerprint, self.description = model.eval(), prep, fingerprint, description
        self.device = next(model.parameters()).device
        self.cameras = model.backbone.cameras if takes_camera(model) else 0
        self.dim = int(self._forward(torch.zeros(1, 3, *input_shape(prep))).shape[1])
        return self

    @torch.no_grad()
    def _forward(self, images, camids=None):
        images = images.to(self.device)
        if camids is not None and takes_camera(self.model):
            images = {"images": images, "camids": torch.as_tensor(camids, device=self.device)}
        return self.model(images).float().cpu().numpy()


class OnnxEmbedder(Embedder):
    """An ONNX file written by ``tools/export_onnx.py``: its metadata gives preprocessing and fingerprint."""

    def __init__(self, path, threads=0):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        except Exception as e:  # not an ONNX file, or truncated
            raise ModelFileError(f"{path} is not a readable ONNX model ({type(e).__name__}: "
                                 f"{str(e).splitlines()[0] if str(e) else ''}): export it with tools/export_onnx.py") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if "preprocessing" not in meta or "fingerprint" not in meta:
            raise ModelFileError(f"{path} has no preprocessing metadata: export it with tools/export_onnx.py")
        self.prep, self.dim = _checked_metadata(path, meta)
        self.fingerprint = meta["fingerprint"]
        self.description = f"{path} (exported from {meta.get('source_weights', '?')})"
        self.input_name = self.session.get_inputs()[0].name
        # an export of a model with SIE takes camids; its camera count is in the metadata since it was written
        has_cameras = any(i.name == "camids" for i in self.session.get_inputs())
        count = meta.get("sie_cameras", "")
        self.cameras = (int(count) if count.isdigit() else None) if has_cameras else 0

    def _forward(self, images, camids=None):
        feeds = {self.input_name: images.numpy()}
        if self.takes_camera:
            feeds["camids"] = np.full(len(images), -1, np.int64) if camids is None else np.asarray(camids, np.int64)
        return self.session.run(None, feeds)[0]


def _unit(features):
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def _checked_metadata(path, meta):
    """(preprocessing, embedding dimension) of an export's metadata, each checked: an edited or foreign
    file stops with one line instead of a KeyError or a wrong input size."""
    try:
        prep = json.loads(meta["preprocessing"])
        dim = int(meta["embedding_dim"])
        ok = isinstance(prep, dict) and _sizes(prep.get("size")) and (prep.get("crop") is None or
                                                                      _sizes(prep.get("crop"))) and dim > 0
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise ModelFileError(f"{path}: its metadata (preprocessing, embedding_dim) is not what tools/export_onnx.py "
                             "writes: export the model again with tools/export_onnx.py")
    return prep, dim


def _sizes(value):
    return isinstance(value, list) and 1 <= len(value) <= 2 and all(type(v) is int and 0 < v <= 8192 for v in value)


def open_embedder(weights, config_file="", opts=(), device=None):
    """:class:`OnnxEmbedder` for a ``.onnx`` file, else :class:`TorchEmbedder` (needs ``config_file``)."""
    if str(weights).lower().endswith(".onnx"):
        if not os.path.isfile(weights):
            raise MissingFileError(f"model {weights} does not exist")
        return OnnxEmbedder(weights)
    return TorchEmbedder(config_file, weights, opts, device)
