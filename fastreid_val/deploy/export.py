"""ONNX export of a model's inference graph, checked with ONNX Runtime before it is written.

The graph: ``images`` float32 [batch, 3, H, W], RGB in 0..255 (FastReID's test transform, see
:mod:`fastreid_val.deploy.model`) -> ``embedding`` float32 [batch, d], the model's evaluation output.
Normalisation by ``MODEL.PIXEL_MEAN/STD`` is inside the graph, as it is inside the PyTorch model;
the batch axis is dynamic. The exporter is torch's default one (``torch.export``, then ONNX Script's
translation, opset 20): it emits standard ``ai.onnx`` operators, which is checked
(:func:`check_standard_operators`), never an ATen fallback. The preprocessing is written into the
model's metadata (``metadata_props``), so the .onnx file alone says what to feed it.
"""
import json
import logging
import os

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_write
from ..engine.checkpoint import read_checkpoint_model
from ..errors import ExportCheckError, MissingFileError, UserInputError
from .images import list_images, read_images
from .model import fingerprint, image_transform, inference_config, input_shape, load_model, preprocessing, takes_camera

logger = logging.getLogger(__name__)

__all__ = ["EmbeddingGraph", "export_model", "export_checked", "to_onnx",
           "check_standard_operators", "compare_with_pytorch", "write_onnx", "DEFAULT_TOLERANCE"]

# Largest |ONNX Runtime - PyTorch| allowed on L2-normalised features (what search compares). Measured
# differences are 1e-7 to 1e-6 (float32 rounding in other kernels); a wrong graph (normalisation,
# layout, weights) differs by 1e-2 and more.
DEFAULT_TOLERANCE = 1e-4
STANDARD_DOMAINS = ("", "ai.onnx")


class EmbeddingGraph(nn.Module):
    """What is exported: ``images`` [N, 3, H, W] (RGB, 0..255) [and ``camids`` [N] when the model has
    SIE] -> the model's embedding [N, d].

    FastReID's ``preprocess_image`` normalises its input in place; it gets a copy, so the graph's
    input is never written to.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images, camids=None):
        if camids is None:
            return self.model(images.clone())
        return self.model({"images": images.clone(), "camids": camids})


def to_onnx(model, prep, opset=20):
    """The ONNX ``ModelProto`` of ``model``'s evaluation forward (on CPU), batch axis dynamic."""
    model = model.cpu().eval()
    h, w = input_shape(prep)
    # Batch 2: an example batch of 1 would let the exporter specialise the batch axis to 1.
    example = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(0)) * 255
    batch = torch.export.Dim("batch", min=1)
    args, names, shapes = (example,), ["images"], {"images": {0: batch}}
    if takes_camera(model):
        args, names, shapes = (example, torch.tensor([0, -1])), names + ["camids"], {**shapes, "camids": {0: batch}}
    program = torch.onnx.export(EmbeddingGraph(model).eval(), args, dynamo=True, opset_version=opset,
                                input_names=names, output_names=["embedding"],
                                dynamic_shapes=shapes, external_data=False, verbose=False)
    proto = program.model_proto
    check_standard_operators(proto)
    return proto


def check_standard_operators(proto):
    """Raise :class:`ExportCheckError` if any node (graph, sub-graphs, functions) is outside ``ai.onnx``."""
    odd = sorted({f"{n.domain}::{n.op_type}" for n in _all_nodes(proto) if n.domain not in STANDARD_DOMAINS})
    if odd:
        raise ExportCheckError(f"the exported graph uses non-standard operators {odd}; ONNX Runtime and other "
                               "runtimes may reject them")


def _all_nodes(proto):
    graphs = [proto.graph]
    for f in proto.functions:
        yield from f.node
    while graphs:
        g = graphs.pop()
        for n in g.node:
            yield n
            graphs.extend(a.g for a in n.attribute if a.g is not None and a.g.node)
            graphs.extend(sub for a in n.attribute for sub in a.graphs)


def set_metadata(proto, meta):
    """Write ``meta`` ({key: str or JSON-able}) into the model's ``metadata_props``."""
    props = {p.key: p.value for p in proto.metadata_props}
    props.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()})
    del proto.metadata_props[:]
    for k, v in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v


def describe(prep, dim):
    """Human-readable metadata: what to feed the graph and what it returns."""
    h, w = input_shape(prep)
    resize = f"resized to {prep['size']} (bicubic)" + (f", centre-cropped to {prep['crop']}" if prep["crop"] else "")
    return {"input": f"images: float32 [batch, 3, {h}, {w}], RGB, values 0..255 (not normalised), {resize}",
            "normalisation": f"inside the graph: (images - pixel_mean) / pixel_std, pixel_mean {prep['pixel_mean']}, "
                             f"pixel_std {prep['pixel_std']}",
            "output": f"embedding: float32 [batch, {dim}]; compare embeddings by cosine similarity (L2-normalise)"}


def compare_with_pytorch(model, onnx_bytes, images, max_batch=16):
    """Features of ONNX Runtime vs PyTorch on ``images`` [N, 3, H, W] (0..255), in batches of 1
    and up to ``max_batch`` (the dynamic batch axis is exercised). A model with SIE gets camera ids too:
    image i camera ``i mod (cameras + 1) - 1``, so the unknown camera (-1) and known ones are compared.

    Returns {"max_abs_diff": on L2-normalised features, "max_abs_diff_raw", "images", "batch_sizes"}.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    model = model.cpu().eval()
    graph = EmbeddingGraph(model)
    camids = torch.arange(len(images)) % (model.backbone.cameras + 1) - 1 if takes_camera(model) else None
    sizes = [1] + [min(max_batch, len(images) - i) for i in range(1, len(images), max_batch)]
    ours, theirs, start = [], [], 0
    with torch.no_grad():
        for size in sizes:
            batch = images[start:start + size].float()
            feeds = {name: batch.numpy()}
            cams = None if camids is None else camids[start:start + size]
            if cams is not None:
                feeds["camids"] = cams.numpy()
            start += size
            ours.append(graph(batch, cams).float().numpy())
            theirs.append(session.run(None, feeds)[0])
    ours, theirs = np.concatenate(ours), np.concatenate(theirs)
    if ours.shape != theirs.shape:
        raise ExportCheckError(f"ONNX Runtime returns features of shape {theirs.shape}, PyTorch {ours.shape}")
    unit = lambda f: f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)  # noqa: E731
    return {"max_abs_diff": float(np.abs(unit(ours) - unit(theirs)).max()),
            "max_abs_diff_raw": float(np.abs(ours - theirs).max()), "images": len(images), "batch_sizes": sizes}


def export_checked(model, cfg, images, output, metadata=None, tolerance=DEFAULT_TOLERANCE):
    """Export ``model`` (config ``cfg``) to ``output``, check it on ``images``, then write it.

    The file is written (atomically) only when ONNX Runtime's features are within ``tolerance`` of
    PyTorch's; otherwise :class:`ExportCheckError` and nothing is written. Returns (check, proto).
    """
    prep = preprocessing(cfg)
    proto = to_onnx(model, prep)
    dim = proto.graph.output[0].type.tensor_type.shape.dim[1].dim_value
    # A model with SIE: its camera count, so that search gives it only camera numbers it was trained with.
    cameras = {"sie_cameras": model.backbone.cameras} if takes_camera(model) else {}
    set_metadata(proto, {**describe(prep, dim), "preprocessing": prep, "embedding_dim": dim, **cameras,
                         **(metadata or {})})
    check = compare_with_pytorch(model, proto.SerializeToString(), images)
    check["tolerance"] = tolerance
    if not check["max_abs_diff"] <= tolerance:  # also refuses NaN
        raise ExportCheckError(
            f"ONNX Runtime's features differ from PyTorch's: max |diff| = {check['max_abs_diff']:.3g} > tolerance "
            f"{tolerance:g} on L2-normalised features ({check['images']} images); {output} was not written")
    set_metadata(proto, {"check": {k: check[k] for k in ("max_abs_diff", "max_abs_diff_raw", "images", "tolerance")}})
    write_onnx(proto, output)
    logger.info("wrote %s: ONNX Runtime vs PyTorch max |diff| %.2e on %d images", output, check["max_abs_diff"],
                check["images"])
    return check, proto


def write_onnx(proto, path):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    atomic_write(path, lambda f: f.write(proto.SerializeToString()))


def export_model(config_file, weights, output=None, images=None, num_images=32, opts=(), tolerance=DEFAULT_TOLERANCE):
    """``tools/export_onnx.py``: checkpoint + config -> checked ONNX file. Returns (output, check, proto).

    ``images``: folder or list of images to check on (``num_images`` of them, evenly spread); by
    default the config's first test dataset (query, then gallery images).
    """
    output = output or os.path.splitext(weights)[0] + ".onnx"
    cfg = inference_config(config_file, weights, opts, device="cpu")
    state = read_checkpoint_model(weights)
    model = load_model(cfg, state, config_file=config_file)
    paths = _spread(list_images(images, "--images") if images else _test_images(cfg), num_images)
    batch = read_images(paths, image_transform(preprocessing(cfg)))
    meta = {"fingerprint": fingerprint(cfg), "source_weights": weights, "source_config": config_file,
            "meta_architecture": cfg.MODEL.META_ARCHITECTURE, "producer": "fastreid-val"}
    check, proto = export_checked(model, cfg, batch, output, meta, tolerance)
    return output, check, proto


def _test_images(cfg):
    from ..data.build import load_dataset

    name = cfg.DATASETS.TESTS[0]
    try:
        dataset = load_dataset(cfg, name)
    except UserInputError as e:
        raise MissingFileError(f"no images to check the export on ({e}); give a few with --images FOLDER") from None
    return [item[0] for item in list(dataset.query) + list(dataset.gallery)]


def _spread(paths, n):
    """``n`` of ``paths``, evenly spaced (all when fewer)."""
    if len(paths) <= n:
        return paths
    return [paths[i] for i in np.linspace(0, len(paths) - 1, n).round().astype(int)]
