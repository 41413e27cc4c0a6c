"""Host-device synchronisations of a training step that this plugin adds: each one stalls a GPU's queue.

A ``TorchFunctionMode`` counts the tensor methods that read a value back to the host (``item``,
``__bool__``, ``tolist`` ...) and attributes each to the Python file that called it. Labels are
validated where they enter (the dataset), diagnostics are read when the writers write
(``RUN.LOG_PERIOD``), and the loss check's verdict is the one read per step.
"""
import os
import sys
from collections import Counter

import pytest
import torch
from fastreid.modeling import build_model
from fastreid.utils.events import EventStorage
from torch.overrides import TorchFunctionMode

import fastreid_val
from fastreid_val.engine import build_config
from fastreid_val.engine.hooks import NonFiniteLossCheck

PACKAGE = os.path.dirname(fastreid_val.__file__)
TORCH = os.path.dirname(torch.__file__)
READS = {torch.Tensor.item, torch.Tensor.__bool__, torch.Tensor.tolist, torch.Tensor.__float__,
         torch.Tensor.__int__, torch.Tensor.__index__, torch.Tensor.numpy}


class CountHostReads(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.ours = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in READS:
            frame = sys._getframe(1)
            while frame is not None and frame.f_code.co_filename.startswith(TORCH):
                frame = frame.f_back
            if frame is not None and frame.f_code.co_filename.startswith(PACKAGE):
                self.ours[f"{os.path.relpath(frame.f_code.co_filename, PACKAGE)}:{frame.f_lineno}"] += 1
        return func(*args, **(kwargs or {}))


def test_the_counter_sees_a_read():
    with CountHostReads() as count:
        from fastreid_val.modeling.losses import reunion_loss

        reunion_loss(torch.randn(3, 2, 4)).item()  # called from this test file: not ours
        fastreid_val.modeling.meta_arch.log_subcenter_cosine(EventStorage(0), torch.randn(3, 2, 4))
    assert sum(count.ours.values()) == 1


def _step(config, iteration, log_period):
    cfg = build_config(config, ["MODEL.BACKBONE.PRETRAIN", "False", "MODEL.HEADS.NUM_CLASSES", "3",
                                "MODEL.DEVICE", "cpu", "RUN.LOG_PERIOD", str(log_period)])
    torch.manual_seed(0)
    model = build_model(cfg).train()
    check = NonFiniteLossCheck()
    check.trainer = type("Trainer", (), {"model": model, "iter": iteration, "epoch": 0})()
    check.before_train()
    batch = {"images": torch.rand(8, 3, 48, 48) * 255, "targets": torch.tensor([0, 0, 1, 1, 2, 2, 0, 1]),
             "viewpoints": torch.tensor([0, 1, -1, 1, 0, 0, 1, -1])}
    with EventStorage(iteration), CountHostReads() as count:
        check.before_step()
        model(batch)
    return count.ours


@pytest.mark.parametrize("config", ["configs/VeRi/val_r50.yml", "configs/VeRi/sbs_R50-ibn_val.yml",
                                    "configs/VeRi/mgn_R50-ibn_val.yml", "configs/VERIWild/bagtricks_R50-ibn_val.yml"])
def test_a_training_step_reads_the_device_once(config):
    ours = _step(config, iteration=10, log_period=20)  # not a writing iteration
    assert sum(ours.values()) == 1 and list(ours) == [next(k for k in ours if k.startswith("engine/hooks.py"))], ours
    ours = _step(config, iteration=19, log_period=20)  # the writers write: + viewpoint accuracy, sub-center cosine
    assert sum(ours.values()) == 3, ours
