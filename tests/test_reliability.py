"""Nothing lost: kill-and-resume equals an uninterrupted run, atomic checkpoints, NaN stops cleanly, gloo DDP."""
import glob
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import warnings

import pytest
import torch

import fastreid_val  # noqa: F401  (first: shims; this module is also imported by spawned DDP workers)
from fastreid.engine import default_argument_parser, launch
from fastreid_val.engine import ViewpointTrainer, main, setup
from fastreid_val.engine.checkpoint import AtomicCheckpointer
from fastreid_val.modeling.meta_arch import ViewpointBaseline
from fastreid_val.weights_file import load_weights_file

from .conftest import TINY_OPTS

ROOT = os.path.join(os.path.dirname(__file__), "..")
CFG = os.path.join(ROOT, "configs/SynthVeRi/val_mnv2.yml")
# Deterministic settings: fixed seed, no random augmentation, no loader workers.
DETERMINISTIC = TINY_OPTS + [
    "INPUT.SIZE_TRAIN", "[32, 32]", "INPUT.SIZE_TEST", "[32, 32]", "SOLVER.IMS_PER_BATCH", "32",
    "DATALOADER.NUM_WORKERS", "0", "SOLVER.WARMUP_ITERS", "5", "RUN.SEED", "7", "INPUT.FLIP.ENABLED", "False",
    "INPUT.PADDING.ENABLED", "False", "INPUT.CJ.ENABLED", "False", "TEST.RERANK.ENABLED", "False",
    "SOLVER.MAX_EPOCH", "6", "SOLVER.CHECKPOINT_PERIOD", "2", "TEST.EVAL_PERIOD", "6"]


def _train_cmd(out, *extra):
    return [sys.executable, os.path.join(ROOT, "tools/train_net.py"), "--config-file", CFG, *extra,
            *DETERMINISTIC, "OUTPUT_DIR", out]


def _weights(path):
    return load_weights_file(path)["model"]


def _run(cmd, env):
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_killed_run_resumes_to_the_same_weights_and_metrics(datasets_root, tmp_path):
    env = dict(os.environ, FASTREID_DATASETS=datasets_root, PYTHONUNBUFFERED="1")
    whole = str(tmp_path / "whole")
    _run(_train_cmd(whole), env)

    cut = str(tmp_path / "cut")
    proc = subprocess.Popen(_train_cmd(cut), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tag = os.path.join(cut, "last_checkpoint")
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if os.path.exists(tag) and open(tag).read().strip() == "model_0001.pth":
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # mid-epoch, after the first checkpoint (end of epoch 2)
    proc.wait()
    assert not os.path.exists(os.path.join(cut, "model_final.pth")), "run finished before it could be killed"
    named = open(tag).read().strip()
    load_weights_file(os.path.join(cut, named))  # complete file, read as any checkpoint is
    _run(_train_cmd(cut, "--resume"), env)

    a, b = _weights(os.path.join(whole, "model_final.pth")), _weights(os.path.join(cut, "model_final.pth"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-5, rtol=1e-4), k
    ra, rb = (json.load(open(os.path.join(d, "results.json")))["metrics"]["SynthVeRi"] for d in (whole, cut))
    assert ra["mAP"] == pytest.approx(rb["mAP"], abs=1e-3) and ra["Rank-1"] == pytest.approx(rb["Rank-1"], abs=1e-3)
    # What the numbers were measured on: they repeat to the digit only on the same CPU kernels and threads.
    env = json.load(open(os.path.join(whole, "results.json")))["environment"]
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and env["torch"] == torch.__version__
    assert env["threads"] >= 1 and env["cpu"] and env["gpu"] is None


def test_interrupted_checkpoint_write_leaves_last_checkpoint_intact(tmp_path, monkeypatch):
    model = torch.nn.Linear(2, 2)
    ckpt = AtomicCheckpointer(model, str(tmp_path))
    ckpt.save("model_0000")

    def broken_save(obj, f):
        f.write(b"partial")
        raise KeyboardInterrupt  # killed mid-write

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save("model_0001")
    monkeypatch.undo()
    assert open(tmp_path / "last_checkpoint").read() == "model_0000.pth"
    assert not os.path.exists(tmp_path / "model_0001.pth")
    assert not glob.glob(str(tmp_path / ".tmp-*"))
    load_weights_file(str(tmp_path / "model_0000.pth"))


def test_nan_loss_names_iteration_and_term(datasets_root, tmp_path, monkeypatch):
    calls = {"n": 0}
    original = ViewpointBaseline.losses

    def poisoned(self, outputs, gt_labels, gt_viewpoints=None):
        losses = original(self, outputs, gt_labels, gt_viewpoints)
        calls["n"] += 1
        if calls["n"] == 9:  # iteration 8, in epoch 1, after the first checkpoint (epoch 0, period 1)
            losses["loss_reunion"] = losses["loss_reunion"] * float("nan")
        return losses

    monkeypatch.setattr(ViewpointBaseline, "losses", poisoned)
    args = default_argument_parser().parse_args(["--config-file", CFG, *DETERMINISTIC, "SOLVER.CHECKPOINT_PERIOD", "1",
                                                 "OUTPUT_DIR", str(tmp_path)])
    with pytest.raises(FloatingPointError, match=r"loss term loss_reunion=nan at iteration 8 .*last good checkpoint"):
        main(args)
    named = open(tmp_path / "last_checkpoint").read()
    assert named == "model_0000.pth"
    assert torch.isfinite(_weights(tmp_path / named)["heads.weight"]).all()


def _ddp_main(args, out_file):
    """Runs in each of 2 gloo processes: train, record a weight digest after every step, evaluate."""
    from fastreid.engine import HookBase
    from fastreid.utils import comm

    cfg = setup(args)
    with warnings.catch_warnings(record=True) as caught:  # DDP is built here, with FastReID's arguments
        warnings.simplefilter("always")
        trainer = ViewpointTrainer(cfg)
    deprecated = [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]
    digests = []

    class Digest(HookBase):
        def after_step(self):
            # parameters only: FastReID's DDP does not broadcast buffers (BN running stats are per rank)
            h = hashlib.sha256()
            for _, p in sorted(trainer.model.module.named_parameters()):
                h.update(p.detach().cpu().numpy().tobytes())
            digests.append(h.hexdigest())

    trainer.register_hooks([Digest()])
    trainer.resume_or_load(resume=False)
    results = trainer.train()
    with open(f"{out_file}.{comm.get_rank()}", "w") as f:
        json.dump({"digests": digests, "deprecated": deprecated, "forward_sync_buffers":
                   trainer.model.forward_sync_buffers, "results": {k: float(v) for k, v in (results or {}).items()
                                                   if isinstance(v, (int, float)) or hasattr(v, "item")}}, f)


def test_two_process_gloo_training_keeps_ranks_in_sync(datasets_root, tmp_path):
    args = default_argument_parser().parse_args(
        ["--config-file", CFG, "--num-gpus", "2", *DETERMINISTIC, "SOLVER.MAX_EPOCH", "2", "TEST.EVAL_PERIOD", "2",
         "OUTPUT_DIR", str(tmp_path)])
    out = str(tmp_path / "rank")
    launch(_ddp_main, 2, num_machines=1, machine_rank=0, dist_url="auto", args=(args, out))
    r0, r1 = (json.load(open(f"{out}.{r}")) for r in (0, 1))
    assert len(r0["digests"]) == 12 and r0["digests"] == r1["digests"]
    # FastReID's broadcast_buffers=False reaches DDP as forward_sync_buffers=False, without torch's FutureWarning
    assert r0["deprecated"] == r1["deprecated"] == [] and r0["forward_sync_buffers"] is r1["forward_sync_buffers"] is False
    assert r0["results"]["mAP"] > 0 and r1["results"] == {}  # evaluated once, on the main process


def _ddp_nan_main(args, out_file):
    """Runs in each of 2 gloo processes; rank 1 alone gets a NaN loss at its third step."""
    from fastreid.utils import comm

    from fastreid_val.errors import NonFiniteLossError

    calls = {"n": 0}
    original = ViewpointBaseline.losses

    def poisoned(self, outputs, gt_labels, gt_viewpoints=None):
        losses = original(self, outputs, gt_labels, gt_viewpoints)
        calls["n"] += 1
        if comm.get_rank() == 1 and calls["n"] == 3:
            losses["loss_partition"] = losses["loss_partition"] * float("nan")
        return losses

    ViewpointBaseline.losses = poisoned
    try:
        main(args)
        message = "finished"
    except NonFiniteLossError as e:
        message = str(e)
    with open(f"{out_file}.{comm.get_rank()}", "w") as f:
        f.write(message)


def test_a_nan_on_one_rank_stops_every_rank(datasets_root, tmp_path):
    # Without the ranks agreeing, rank 1 stops alone and rank 0 waits in DDP's all-reduce (NCCL: until
    # its timeout; gloo: until the spawner kills it): rank 0 would write no file.
    args = default_argument_parser().parse_args(
        ["--config-file", CFG, "--num-gpus", "2", *DETERMINISTIC, "OUTPUT_DIR", str(tmp_path)])
    out = str(tmp_path / "rank")
    launch(_ddp_nan_main, 2, num_machines=1, machine_rank=0, dist_url="auto", args=(args, out))
    r0, r1 = (open(f"{out}.{r}").read() for r in (0, 1))
    assert r1.startswith("loss term loss_partition=nan at iteration 2 ")
    assert r0.startswith("a non-finite loss term on another rank at iteration 2 ")
