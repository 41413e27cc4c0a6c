"""RUN.COMPILE and RUN.BF16 (fastreid_val/engine/step_levers.py): off by default, each doing what it says
when on, a bad value one line naming the key. Nothing here compiles (a cold compile costs a minute):
the wiring is checked, the speed is benchmarks/train_step.py --case demo's."""
import os

import pytest
import torch
from fastreid.utils.events import EventStorage

from fastreid_val.engine import build_config
from fastreid_val.engine.step_levers import (bf16_training_forward, check_step_levers, compile_backbone,
                                            inductor_cache_dir)
from fastreid_val.engine.trainer import ViewpointTrainer
from fastreid_val.errors import ConfigError, InvalidConfigError

from .test_docs import ROOT

CONFIG = "configs/SynthVeRi/val_mnv2.yml"
TINY = ["MODEL.BACKBONE.PRETRAIN", "False", "MODEL.HEADS.NUM_CLASSES", "8"]


def test_the_levers_are_off_unless_asked():
    cfg = build_config(CONFIG, TINY)
    assert cfg.RUN.COMPILE is False and cfg.RUN.BF16 is False and cfg.RUN.CHANNELS_LAST is True
    model = ViewpointTrainer.build_model(cfg)
    assert model.backbone._compiled_call_impl is None and "forward" not in vars(model)


@pytest.mark.parametrize("key", ["RUN.COMPILE", "RUN.BF16", "RUN.FLUSH_DENORMAL"])
def test_a_bad_value_is_one_line_naming_the_key(key):
    with pytest.raises(ConfigError, match=rf"command line: Type mismatch .* maybe\) for config key: {key}$"):
        build_config(CONFIG, [key, "maybe"])


def test_bf16_with_fastreids_amp_is_refused_on_cuda():
    # on a CPU resolve_device turns FastReID's CUDA-only AMP off, so RUN.BF16 is the one precision left
    cfg = build_config(CONFIG, ["RUN.BF16", "True", "SOLVER.AMP.ENABLED", "True"])
    assert cfg.SOLVER.AMP.ENABLED is False or cfg.MODEL.DEVICE.startswith("cuda")
    cfg.defrost()
    cfg.SOLVER.AMP.ENABLED = True  # as a CUDA machine keeps it
    with pytest.raises(InvalidConfigError, match=r"^RUN.BF16 True and SOLVER.AMP.ENABLED True are two mixed"):
        check_step_levers(cfg)


def test_compile_is_the_backbone_in_place_with_kernels_in_the_users_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    cfg = build_config(CONFIG, [*TINY, "RUN.COMPILE", "True"])
    plain = ViewpointTrainer.build_model(build_config(CONFIG, TINY))
    model = ViewpointTrainer.build_model(cfg)
    assert model.backbone._compiled_call_impl is not None and model.heads._compiled_call_impl is None
    assert list(model.state_dict()) == list(plain.state_dict())  # checkpoints load either way
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "fastreid_val" / "inductor")
    assert not os.environ["TORCHINDUCTOR_CACHE_DIR"].startswith(ROOT)
    # a cache the user names is kept
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    compile_backbone(ViewpointTrainer.build_model(build_config(CONFIG, TINY)))
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "mine")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert inductor_cache_dir() == os.path.expanduser("~/.cache/fastreid_val/inductor")


def test_bf16_autocasts_the_training_forward_only():
    class Net(torch.nn.Module):
        device = torch.device("cpu")

        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(x)

    net, x = Net(), torch.randn(2, 4)
    expected = net(x)
    bf16_training_forward(net)
    net.train()
    out = net(x)
    assert out.dtype == torch.bfloat16 and torch.allclose(out.float(), expected, atol=0.05)
    out.float().sum().backward()
    assert net.fc.weight.grad.dtype == torch.float32 and net.fc.weight.dtype == torch.float32
    net.eval()
    assert net(x).dtype == torch.float32 and torch.equal(net(x), expected)
    assert set(net.state_dict()) == {"fc.weight", "fc.bias"}


def test_bf16_trains_the_recipes_model():
    cfg = build_config(CONFIG, [*TINY, "RUN.BF16", "True"])
    model = ViewpointTrainer.build_model(cfg)
    model.train()
    batch = {"images": torch.rand(8, 3, 64, 64) * 255, "targets": torch.arange(8) // 2,
             "viewpoints": torch.arange(8) % 2, "camids": torch.zeros(8, dtype=torch.long)}
    with EventStorage(0):
        losses = model(batch)
    total = sum(losses.values())
    assert torch.isfinite(total) and total.requires_grad
    total.backward()
    assert all(p.grad is None or p.grad.dtype == torch.float32 for p in model.parameters())
