"""The ViT with side information (fastreid_val/modeling/vit.py, side_information.py, vit_weights.py): SIE
changes features with the camera when SIE_COE > 0 and not at 0, the meta-architectures pass the batch's
cameras, bad settings stop in one line, and the ImageNet file comes through the weight cache (served on
127.0.0.1, never the internet)."""
import functools
import http.server
import os
import threading

import pytest
import torch

from fastreid_val.config import check_cameras
from fastreid_val.engine import build_config
from fastreid_val.errors import InvalidConfigError, MissingFileError, PretrainedWeightsError
from fastreid_val.modeling import vit_weights
from fastreid_val.modeling.vit import SideInformationViT
from fastreid_val.modeling.vit_weights import load_imagenet_vit, resolve_vit_weights

ROOT = os.path.join(os.path.dirname(__file__), "..")
VERI = os.path.join(ROOT, "configs/VeRi/bagtricks_vit.yml")
SMALL = ["MODEL.BACKBONE.DEPTH", "small", "INPUT.SIZE_TRAIN", "[32, 32]", "INPUT.SIZE_TEST", "[32, 32]",
         "MODEL.BACKBONE.PRETRAIN", "False", "MODEL.HEADS.NUM_CLASSES", "4"]


def tiny_vit(sie=3.0, cameras=3, views=2, size=32):
    torch.manual_seed(0)
    return SideInformationViT(img_size=(size, size), embed_dim=32, depth=1, num_heads=2, sie_xishu=sie,
                              cameras=cameras, views=views).eval()


@pytest.mark.parametrize("sie", [3.0, 0.0])
def test_features_change_with_the_camera_only_when_sie_is_on(sie):
    model, x = tiny_vit(sie), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        a = model(x, torch.tensor([0, 0]), torch.tensor([1, 1]))
        b = model(x, torch.tensor([2, 2]), torch.tensor([1, 1]))
        c = model(x, torch.tensor([0, 0]), torch.tensor([0, 0]))
    changed = (a - b).abs().max().item() > 1e-4 and (a - c).abs().max().item() > 1e-4
    assert changed == (sie > 0)


def test_unknown_camera_and_viewpoint_get_the_mean_vectors():
    model = tiny_vit()
    table = model.sie_embed.detach().view(3, 2, -1)  # [K, V, D], index c * V + v (TransReID)
    got = model.side_information(torch.tensor([-1, 1, 2]), torch.tensor([0, -1, 1]), 3).squeeze(1).detach()
    torch.testing.assert_close(got[0], table[:, 0].mean(0))  # camera unknown: mean over cameras
    torch.testing.assert_close(got[1], table[1].mean(0))  # viewpoint unknown: mean over its camera's
    torch.testing.assert_close(got[2], model.sie_embed.detach()[2 * 2 + 1, 0])


@pytest.fixture
def one_block(monkeypatch):
    """FastReID's small ViT with one block instead of 8: what these tests check (the cameras' path through the
    meta-architecture, the export's camera input) is the same, at an eighth of the weights to build."""
    from fastreid_val.modeling import vit

    monkeypatch.setitem(vit.VIT_DEPTHS, "small", dict(vit.VIT_DEPTHS["small"], depth=1))


def test_meta_architectures_pass_the_batch_cameras_in_evaluation(one_block):
    from fastreid.modeling import build_model

    cfg = build_config(VERI, SMALL)
    model = build_model(cfg).eval()
    x = torch.rand(2, 3, 32, 32) * 255
    with torch.no_grad():
        near = model({"images": x.clone(), "camids": torch.tensor([0, 0])})
        far = model({"images": x.clone(), "camids": torch.tensor([7, 7])})
        again = model({"images": x.clone(), "camids": torch.tensor([0, 0])})
    assert (near - far).abs().max() > 1e-4 and torch.equal(near, again)


@pytest.mark.parametrize("opts, message", [
    (["INPUT.SIZE_TEST", "[64, 32]"], "INPUT.SIZE_TEST [64, 32] differs from INPUT.SIZE_TRAIN"),
    (["MODEL.BACKBONE.DEPTH", "large"], "MODEL.BACKBONE.DEPTH 'large'"),
    (["MODEL.SIE.VIEWS", "4"], "MODEL.SIE.VIEWS 4 must equal MODEL.VAL.NUM_VIEWPOINTS"),
])
def test_bad_vit_settings_stop_in_one_line(opts, message):
    with pytest.raises(InvalidConfigError, match=message.replace("[", r"\[").replace("]", r"\]")) as e:
        build_config(VERI, SMALL + opts)
    assert "\n" not in str(e.value)


def test_camera_ids_beyond_the_configured_count_are_refused():
    cfg = build_config(VERI, SMALL)
    check_cameras(cfg, {0, 19}, "the training set VeRiViewpoint")  # VeRi-776: 20 cameras
    with pytest.raises(InvalidConfigError, match="camera ids up to 20 .* MODEL.SIE.CAMERAS is 20"):
        check_cameras(cfg, {0, 20}, "the training set VeRiViewpoint")


def imagenet_like(path, size=224, embed=32, grid=None):
    """A file of timm's ViT layout for ``tiny_vit``'s shape: 14x14 position grid, classifier ``head``."""
    state = {k: torch.randn_like(v) for k, v in tiny_vit(size=32).state_dict().items() if k != "sie_embed"}
    grid = grid or size // 16
    state["pos_embed"] = torch.randn(1, grid * grid + 1, embed)
    state["head.weight"], state["head.bias"] = torch.randn(1000, embed), torch.randn(1000)
    torch.save(state, path)
    return state


def test_imagenet_file_fills_every_tensor_with_the_position_grid_resized(tmp_path):
    state = imagenet_like(tmp_path / "vit.pth")
    model = tiny_vit()
    load_imagenet_vit(model, str(tmp_path / "vit.pth"))
    torch.testing.assert_close(model.blocks[0].attn.qkv.weight, state["blocks.0.attn.qkv.weight"])
    assert model.pos_embed.shape == (1, 2 * 2 + 1, 32)  # 14x14 grid resized to the 2x2 of 32x32 inputs
    torch.testing.assert_close(model.pos_embed[0, 0], state["pos_embed"][0, 0])  # class token's kept
    del state["norm.weight"]
    torch.save(state, tmp_path / "cut.pth")
    with pytest.raises(PretrainedWeightsError, match=r"1 tensors missing \['norm.weight'\]"):
        load_imagenet_vit(tiny_vit(), str(tmp_path / "cut.pth"))


@pytest.fixture
def served(tmp_path, monkeypatch):
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("FASTREID_VAL_WEIGHTS_MIRROR", f"http://127.0.0.1:{server.server_address[1]}/")
    yield folder
    server.shutdown()


def test_download_is_hash_checked_and_cached(served, tmp_path, monkeypatch):
    import hashlib

    cfg = build_config(VERI, SMALL + ["MODEL.BACKBONE.PRETRAIN", "True"])
    name = vit_weights.VIT_URL.rsplit("/", 1)[1]
    imagenet_like(served / name)  # not the release's bytes: its SHA-256 does not start with 80ecf9dd
    with pytest.raises(PretrainedWeightsError, match="does not start with 80ecf9dd"):
        resolve_vit_weights(cfg.clone())
    assert not os.path.exists(tmp_path / "torch" / "checkpoints" / name)
    digest = hashlib.sha256((served / name).read_bytes()).hexdigest()[:8]
    os.rename(served / name, served / f"vit-{digest}.pth")  # a name that carries its hash: downloaded and kept
    monkeypatch.setattr(vit_weights, "VIT_URL", f"https://example.invalid/vit-{digest}.pth")
    resolved = resolve_vit_weights(cfg.clone())
    assert resolved.MODEL.BACKBONE.PRETRAIN_PATH == str(tmp_path / "torch" / "checkpoints" / f"vit-{digest}.pth")


def test_offline_stops_in_one_line_with_the_url(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("FASTREID_VAL_WEIGHTS_MIRROR", "http://127.0.0.1:9/")  # discard port: refused
    cfg = build_config(VERI, SMALL + ["MODEL.BACKBONE.PRETRAIN", "True"])
    with pytest.raises(MissingFileError, match="cannot download ImageNet weights http://127.0.0.1:9/jx_vit_base") as e:
        resolve_vit_weights(cfg)
    assert "\n" not in str(e.value)


def test_export_takes_the_camera_and_matches_pytorch(one_block, tmp_path):
    import numpy as np

    from fastreid.modeling import build_model

    from fastreid_val.deploy.embedder import OnnxEmbedder, camera_of
    from fastreid_val.deploy.export import export_checked

    cfg = build_config(VERI, SMALL)
    model = build_model(cfg).eval()  # one block: the export's cost is the graph's size, the camera plumbing is the same
    assert len(model.backbone.blocks) == 1 and model.backbone.cameras == 20 and model.backbone.views == 2
    images = torch.rand(5, 3, 32, 32) * 255
    check, proto = export_checked(model, cfg, images, str(tmp_path / "vit.onnx"), {"fingerprint": "f"})
    assert [i.name for i in proto.graph.input] == ["images", "camids"] and check["max_abs_diff"] <= 1e-4
    onnx = OnnxEmbedder(str(tmp_path / "vit.onnx"))
    assert onnx.cameras == 20  # the export says how many cameras search may give it
    with torch.no_grad():
        torch_c3 = model({"images": images[:2].clone(), "camids": torch.tensor([3, 3])}).numpy()
        torch_unknown = model(images[:2].clone()).numpy()
    np.testing.assert_allclose(onnx._forward(images[:2], [3, 3]), torch_c3, atol=1e-4)
    np.testing.assert_allclose(onnx._forward(images[:2]), torch_unknown, atol=1e-4)  # default: camera unknown
    assert np.abs(torch_c3 - torch_unknown).max() > 1e-3
    assert camera_of("gallery/0002_c017_00030600_0.jpg") == 16 and camera_of("my_photo.jpg") == -1
