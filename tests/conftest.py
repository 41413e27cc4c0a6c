import os

import pytest

import fastreid_val  # noqa: F401  (shims and registration)
from fastreid_val.data.synthveri import SynthSettings, ensure_synthveri

# An excerpt of the real VeRi-776 keypoint/orientation annotation (see tests/data/README.md).
FIXTURE = os.path.join(os.path.dirname(__file__), "data", "veri776_keypoint_test_excerpt.txt")
TINY = SynthSettings(num_train_ids=24, num_test_ids=12, images_per_id=8, num_cameras=4, cameras_per_id=2,
                     width=32, height=32, num_models=6, num_colours=6, seed=3)
TINY_OPTS = ["DATASETS.SYNTHVERI.NUM_TRAIN_IDS", "24", "DATASETS.SYNTHVERI.NUM_TEST_IDS", "12",
             "DATASETS.SYNTHVERI.IMAGES_PER_ID", "8", "DATASETS.SYNTHVERI.NUM_CAMERAS", "4",
             "DATASETS.SYNTHVERI.SIZE", "[32, 32]", "DATASETS.SYNTHVERI.SEED", "3",
             "DATASETS.SYNTHVERI.NUM_MODELS", "6", "DATASETS.SYNTHVERI.NUM_COLOURS", "6"]


@pytest.fixture(scope="session")
def fixture_lines():
    with open(FIXTURE) as f:
        return [line for line in f if line.strip()]


@pytest.fixture(scope="session")
def datasets_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("datasets"))
    old = os.environ.get("FASTREID_DATASETS")
    os.environ["FASTREID_DATASETS"] = root
    yield root
    if old is None:
        os.environ.pop("FASTREID_DATASETS", None)
    else:
        os.environ["FASTREID_DATASETS"] = old
