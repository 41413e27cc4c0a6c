"""Search with a model that takes the camera (SIE, the transformer recipes): camera names read as training
numbers them, gallery images embedded with the camera their metadata gives, queries with --query-camera or
the unknown camera (the mean of the cameras' vectors), and none of it changes features when SIE_COE is 0."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from fastreid_val.deploy.backend import open_backend
from fastreid_val.deploy.cameras import UNKNOWN_CAMERA, model_camera
from fastreid_val.deploy.embedder import TorchEmbedder
from fastreid_val.deploy.model import preprocessing
from fastreid_val.deploy.search import query_index, update_index
from fastreid_val.engine import build_config
from fastreid_val.modeling.vit import SideInformationViT
from fastreid_val.search_page import SearchRequest, SearchService

ROOT = os.path.join(os.path.dirname(__file__), "..")
CONFIG = os.path.join(ROOT, "configs/SynthVeRi/softmax_vit.yml")  # SIE over SynthVeRi's 8 cameras


def test_camera_names_are_numbered_as_training_numbers_them():
    # VeRi-776 / SynthVeRi: c001 is camera 0 (FastReID's VeRi: camid - 1); VERI-Wild: its number as it is
    assert [model_camera(c, 20) for c in ("c001", "c020", "C005", "0", "19", " 7 ")] == [0, 19, 4, 0, 19, 7]
    # unknown: no camera, another kind of name, or a camera past the model's count
    assert [model_camera(c, 20) for c in (None, "", "north gate", "c000", "c021", "20", "-3")] == [UNKNOWN_CAMERA] * 7
    assert model_camera("c099") == 98  # count not known (an export written before it carried one)


@pytest.fixture(scope="module")
def sie_embedder():
    """The SynthVeRi ViT recipe at 32x32, untrained, its backbone one block of 32 (the camera plumbing is the
    recipe's; its size is not what is tested)."""
    cfg = build_config(CONFIG, ["INPUT.SIZE_TRAIN", "[32, 32]", "INPUT.SIZE_TEST", "[32, 32]", "MODEL.DEVICE", "cpu",
                                "MODEL.HEADS.NUM_CLASSES", "4", "MODEL.BACKBONE.FEAT_DIM", "32"])
    from fastreid.modeling import build_model

    model = build_model(cfg)
    torch.manual_seed(0)
    model.backbone = SideInformationViT(img_size=(32, 32), patch_size=16, stride_size=16, embed_dim=32, depth=1,
                                        num_heads=2, sie_xishu=3.0, cameras=8)
    torch.nn.init.normal_(model.backbone.sie_embed, std=1.0)  # trained cameras differ; zeros would not
    return TorchEmbedder.from_model(model, preprocessing(cfg), "sie-test", "an untrained SIE ViT")


@pytest.mark.parametrize("coe", [3.0, 0.0])
def test_gallery_and_queries_are_embedded_with_their_cameras(sie_embedder, tmp_path, coe):
    sie_embedder.model.backbone.sie_xishu = coe
    folder = tmp_path / "gallery"
    folder.mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    for name in ("a.png", "b.png", "c.png", "query.png"):  # one picture, four files
        Image.fromarray(pixels).save(folder / name)
    meta = tmp_path / "meta.csv"  # c.png: a camera the model was not trained on (8 cameras: c001..c008)
    meta.write_text("path,camera,timestamp\ngallery/a.png,c001,\ngallery/b.png,c002,\ngallery/c.png,c099,\n")
    gallery, index = [str(folder / n) for n in ("a.png", "b.png", "c.png")], str(tmp_path / "index")
    update_index(sie_embedder, gallery, index, metadata_file=str(meta))
    with open_backend(index) as b:
        rows = b.live()
        a, b_, c = b.vectors([rows[p]["pos"] for p in gallery])
    unknown = sie_embedder.embed([str(folder / "query.png")], camids=[-1])[0]
    np.testing.assert_allclose(c, unknown, atol=1e-6)  # c099: the unknown camera
    assert (np.abs(a - b_).max() > 1e-3) == (coe > 0)  # same picture, cameras c001 and c002

    def nearest(**filters):
        (result,) = query_index(sie_embedder, index, [str(folder / "query.png")], top_k=3, **filters)
        return os.path.basename(result.matches[0].path), result.matches[0].distance

    if coe > 0:
        assert nearest(query_camera="c002") == ("b.png", pytest.approx(0, abs=1e-5))
        assert nearest() == ("c.png", pytest.approx(0, abs=1e-5))  # no camera given: the unknown camera
        with open_backend(index) as backend:  # the search page's upload: the same cameras
            page = SearchService(backend, sie_embedder, index)
            data = (folder / "query.png").read_bytes()
            for camera, row in (("c002", 1), ("c001", 0), (None, 2)):
                got = page.search_image(data, SearchRequest(k=1, query_camera=camera))
                assert got["query"]["embedded_with_camera"] == {"c002": 1, "c001": 0, None: -1}[camera]
                assert got["results"][0]["row"] == row and got["results"][0]["distance"] == pytest.approx(0, abs=1e-5)
    else:
        assert all(d == pytest.approx(0, abs=1e-5) for _, d in (nearest(query_camera="c002"), nearest()))

    meta.write_text("path,camera,timestamp\ngallery/a.png,c002,\ngallery/b.png,c002,\ngallery/c.png,c099,\n")
    up = update_index(sie_embedder, gallery, index, metadata_file=str(meta))  # a.png moved to camera c002
    assert (up.new, up.changed) == (0, 1)  # a model with an SIE table: its vector is embedded again
    with open_backend(index) as b:
        rows = b.live()
        a, b_ = b.vectors([rows[p]["pos"] for p in gallery[:2]])
    np.testing.assert_allclose(a, b_, atol=1e-6)
