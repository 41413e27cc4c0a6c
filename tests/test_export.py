"""ONNX export: round trip on a trained model, standard operators only, dynamic batch, metadata, the
check that refuses a graph whose features differ, and other backbones (MobileNetV2, ResNet-50)."""
import json
import os
import re

import numpy as np
import onnx
from onnx import numpy_helper
import pytest
import torch
from fastreid.modeling import build_model

from fastreid_val.deploy import export as export_mod
from fastreid_val.deploy.export import DEFAULT_TOLERANCE, compare_with_pytorch, export_checked
from fastreid_val.errors import ExportCheckError
from fastreid_val.deploy.model import fingerprint, inference_config, load_model
from fastreid_val.engine.launcher import build_config

from .conftest import run_tool

ROOT = os.path.join(os.path.dirname(__file__), "..")


def _meta(proto):
    return {p.key: p.value for p in proto.metadata_props}


def test_round_trip_of_trained_model(tiny_run, tiny_onnx):
    config, opts, weights, _ = tiny_run
    path, check, proto = tiny_onnx
    assert check["max_abs_diff"] <= DEFAULT_TOLERANCE and check["images"] == 8
    assert check["batch_sizes"] == [1, 7]  # the batch axis is dynamic
    saved = onnx.load(path)
    onnx.checker.check_model(saved, full_check=True)
    assert {n.domain for n in saved.graph.node} <= {"", "ai.onnx"}  # no ATen or other custom operators
    assert [d.dim_param for d in saved.graph.input[0].type.tensor_type.shape.dim][0]
    meta = _meta(saved)
    prep = json.loads(meta["preprocessing"])
    assert prep["size"] == [32, 32] and prep["channels"] == "RGB" and prep["range"] == [0, 255]
    assert prep["pixel_mean"] == pytest.approx([0.485 * 255, 0.456 * 255, 0.406 * 255])
    assert "not normalised" in meta["input"] and "inside the graph" in meta["normalisation"]
    assert json.loads(meta["check"])["max_abs_diff"] == check["max_abs_diff"]
    assert meta["fingerprint"] == fingerprint(inference_config(config, weights, opts))


def test_sub_centers_are_not_in_the_graph(tiny_run, tiny_onnx):
    config, opts, weights, _ = tiny_run
    cfg = inference_config(config, weights, opts, device="cpu")
    model = load_model(cfg)
    classifier = tuple(model.heads.weight.shape)
    assert classifier == (24 * 2, 1280)  # C x V identity-viewpoint sub-centers
    shapes = {tuple(t.dims) for t in onnx.load(tiny_onnx[0]).graph.initializer}
    assert classifier not in shapes
    assert int(_meta(tiny_onnx[2])["embedding_dim"]) == 1280


def test_check_refuses_a_graph_whose_features_differ(tiny_run, tiny_onnx, tmp_path, monkeypatch):
    config, opts, weights, _ = tiny_run
    cfg = inference_config(config, weights, opts, device="cpu")
    model = load_model(cfg)
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 255
    good = onnx.load(tiny_onnx[0])
    assert compare_with_pytorch(model, good.SerializeToString(), images)["max_abs_diff"] <= DEFAULT_TOLERANCE
    # The classic mistake: a graph that does not divide by pixel_std. The check must see it.
    wrong = onnx.load(tiny_onnx[0])
    std = next(t for t in wrong.graph.initializer if t.name.endswith("pixel_std"))
    std.CopyFrom(numpy_helper.from_array(np.ones_like(numpy_helper.to_array(std)), std.name))
    assert compare_with_pytorch(model, wrong.SerializeToString(), images)["max_abs_diff"] > 1e-2
    monkeypatch.setattr(export_mod, "to_onnx", lambda model, prep: wrong)
    out = tmp_path / "refused.onnx"
    with pytest.raises(ExportCheckError, match=r"max \|diff\| = .* > tolerance 0.0001 .* was not written"):
        export_checked(model, cfg, images, str(out))
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("config, opts, size", [
    # stock Baseline + EmbeddingHead (the softmax baseline) on OSNet x0.25, from scratch
    ("configs/SynthVeRi/softmax_mnv2.yml", ["MODEL.BACKBONE.NAME", "build_osnet_backbone", "MODEL.BACKBONE.DEPTH", "x0_25",
                                            "MODEL.BACKBONE.FEAT_DIM", "128", "MODEL.BACKBONE.PRETRAIN", "False"], 64),
    ("configs/VeRi/val_r50.yml", ["MODEL.BACKBONE.PRETRAIN", "False"], 256),  # the paper's config, untrained
], ids=["osnet", "resnet50"])
def test_other_backbones_export_and_match(config, opts, size, tmp_path):
    cfg = build_config(os.path.join(ROOT, config), opts + ["MODEL.HEADS.NUM_CLASSES", "8", "MODEL.DEVICE", "cpu"])
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    images = torch.rand(3, 3, size, size, generator=torch.Generator().manual_seed(2)) * 255
    check, proto = export_checked(model, cfg, images, str(tmp_path / "m.onnx"))
    assert check["max_abs_diff"] <= DEFAULT_TOLERANCE
    assert {n.domain for n in proto.graph.node} <= {"", "ai.onnx"}
    dim = proto.graph.output[0].type.tensor_type.shape.dim[1].dim_value
    assert dim == cfg.MODEL.BACKBONE.FEAT_DIM
    assert np.isfinite(check["max_abs_diff_raw"])


def test_cli_reports_the_check_and_exits_1_when_it_fails(tiny_run, tiny_onnx, tmp_path, monkeypatch, capsys):
    config, opts, weights, data = tiny_run
    graph = onnx.load(tiny_onnx[0])  # the exported graph, so that the tool does not export again
    monkeypatch.setattr(export_mod, "to_onnx", lambda model, prep: onnx.ModelProto.FromString(graph.SerializeToString()))
    argv = ["--config-file", config, "--weights", weights, "--images", os.path.join(data, "image_test"),
            "--num-images", "5", "--output", str(tmp_path / "m.onnx"), *opts]
    code, out, err = run_tool("export_onnx", argv, capsys)
    assert code == 0, err
    assert f"exported {tmp_path / 'm.onnx'}" in out and "ai.onnx operators only" in out and "'batch'" in out
    assert re.search(r"check: ONNX Runtime vs PyTorch on 5 images .* <= tolerance 0.0001 .*: OK", out), out
    code, out, err = run_tool("export_onnx", argv[:-len(opts)] + ["--tolerance", "0", "--output",
                                                                   str(tmp_path / "strict.onnx"), *opts], capsys)
    if code:  # a difference of exactly 0 passes a tolerance of 0; anything else must be refused
        assert code == 1 and "error: ONNX Runtime's features differ from PyTorch's" in err.strip().splitlines()[-1]
        assert not (tmp_path / "strict.onnx").exists()


@pytest.mark.parametrize("case", ["checkpoint vs config", "missing checkpoint", "missing images"])
def test_cli_bad_input_is_one_line_and_exit_2(case, tiny_run, tmp_path, capsys):
    config, opts, weights, data = tiny_run
    argv, message, extra = {  # config overrides (REMAINDER) come last
        "checkpoint vs config": (["--config-file", os.path.join(ROOT, "configs/VeRi/val_r50.yml"), "--weights", weights],
                                 r"checkpoint .*model_final.pth does not fit the model of .*val_r50.yml: .* missing", []),
        "missing checkpoint": (["--config-file", config, "--weights", str(tmp_path / "nope.pth")],
                               r"checkpoint .*nope.pth does not exist", opts),
        "missing images": (["--config-file", config, "--weights", weights, "--images", str(tmp_path / "none")],
                           r"--images .*none does not exist", opts),
    }[case]
    code, _, err = run_tool("export_onnx", argv + ["--output", str(tmp_path / "m.onnx"), *extra], capsys)
    assert code == 2 and "Traceback" not in err, err[-2000:]
    assert re.search(message, err.strip().splitlines()[-1]), err.strip().splitlines()[-1]
    assert not (tmp_path / "m.onnx").exists()


def test_non_standard_operators_are_refused():
    from onnx import TensorProto, helper

    from fastreid_val.deploy.export import check_standard_operators

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    standard = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]))
    check_standard_operators(standard)
    aten = helper.make_model(helper.make_graph([helper.make_node("ATen", ["x"], ["y"], domain="org.pytorch.aten")],
                                               "g", [x], [y]))
    with pytest.raises(ExportCheckError, match=r"non-standard operators \['org.pytorch.aten::ATen'\]"):
        check_standard_operators(aten)
