"""Which exceptions are bad input (one line, exit 2) and which are defects (traceback kept)."""
import pytest
import torch

from fastreid_val.data.annotations import AnnotationError
from fastreid_val.data.bases import DatasetNotFoundError
from fastreid_val.data.common import ViewpointCommDataset
from fastreid_val.engine.checkpoint import CheckpointMismatchError, CheckpointNotFoundError
from fastreid_val.engine.launcher import ConfigError, OutputDirError, user_errors
from fastreid_val.engine.trainer import NonFiniteLossError
from fastreid_val.errors import InvalidConfigError, MissingFileError, UnreadableImageError, UserInputError, one_line
from fastreid_val.labeller import LowAccuracyError

BAD_INPUT = (AnnotationError, DatasetNotFoundError, CheckpointMismatchError, CheckpointNotFoundError, ConfigError,
             OutputDirError, NonFiniteLossError, InvalidConfigError, MissingFileError, UnreadableImageError,
             LowAccuracyError)


@pytest.mark.parametrize("cls", BAD_INPUT)
def test_bad_input_errors_are_user_errors(cls):
    assert issubclass(cls, user_errors())


@pytest.mark.parametrize("error", [ValueError("x"), FileNotFoundError("x"), KeyError("x"), RuntimeError("x")])
def test_defects_keep_their_traceback(error):
    assert not isinstance(error, user_errors())


def test_builtin_bases_are_kept():
    assert issubclass(InvalidConfigError, ValueError) and issubclass(AnnotationError, ValueError)
    assert issubclass(DatasetNotFoundError, FileNotFoundError) and issubclass(UnreadableImageError, OSError)


def test_unreadable_image_in_a_loader_worker_is_one_line(tmp_path):
    bad = tmp_path / "0001_c001_00000001_0.jpg"
    bad.write_bytes(b"not a jpeg")
    ds = ViewpointCommDataset([(str(bad), 1, 0, 0)], None, relabel=False)
    loader = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=1, collate_fn=lambda b: b)
    with pytest.raises(UserInputError) as info:
        next(iter(loader))
    assert "Traceback" in str(info.value)  # the worker's traceback travels in the message ...
    assert one_line(info.value).startswith(f"cannot read image {bad} (not an image format")  # ... and is cut off
    assert "\n" not in one_line(info.value)


def test_one_line_joins_a_plain_multi_line_message():
    assert one_line(InvalidConfigError("first\n  second\n")) == "first second"
    assert one_line(InvalidConfigError("")) == "InvalidConfigError"
