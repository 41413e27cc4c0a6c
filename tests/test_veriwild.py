"""VERI-Wild in FastReID's layout: FastReID's parsing, every viewpoint unknown, and its bad inputs."""
import os

import pytest

from fastreid_val.data.build import load_dataset
from fastreid_val.engine import build_config
from fastreid_val.errors import AnnotationError, DatasetNotFoundError

from .trees import veriwild_tree


@pytest.fixture
def root(tmp_path, monkeypatch):
    veriwild_tree(str(tmp_path))  # 8 training and 4 test identities, 4 images each
    monkeypatch.setenv("FASTREID_DATASETS", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("name", ["VeRiWildViewpoint", "SmallVeRiWildViewpoint", "MediumVeRiWildViewpoint",
                                  "LargeVeRiWildViewpoint"])
def test_items_are_fastreids_with_unknown_viewpoints(root, name):
    data = load_dataset(build_config("configs/VERIWild/bagtricks_R50-ibn_val.yml"), name)
    assert len(data.train) == 32 and len(data.query) == 4 and len(data.gallery) == 12
    assert {it[3] for it in data.train + data.query + data.gallery} == {-1}
    path, pid, camid, _ = data.train[0]
    assert os.path.isfile(path) and pid == "veriwild_0" and camid == "veriwild_1"  # as FastReID's VeRiWild
    assert {it[1] for it in data.query} == set(range(8, 12)) and data.query[0][2] == 1


def test_missing_list_names_the_layout(root):
    os.remove(root / "VERI-Wild" / "train_test_split" / "test_3000_query.txt")
    with pytest.raises(DatasetNotFoundError, match="test_3000_query.txt not found. Expected layout: VERI-Wild/images"):
        load_dataset(build_config(""), "SmallVeRiWildViewpoint")


def test_listed_image_missing_is_named(root):
    os.remove(root / "VERI-Wild" / "images" / "00001" / "000100.jpg")
    with pytest.raises(AnnotationError, match="listed image .*000100.jpg does not exist"):
        load_dataset(build_config(""), "VeRiWildViewpoint")
