"""The user's path on CPU: every config in configs/ trains a few iterations with FastReID's trainer on a
tiny tree in its dataset's published layout (VeRi-776, VehicleID, VERI-Wild, SynthVeRi), with ImageNet
weights from FastReID's cache (files of the right layout that the test writes there).

The configs run as users run them; the overrides only make the run tiny: input size, batch (two
identities of NUM_INSTANCE images; twelve on the tiny SynthVeRi, whose larger training set would
otherwise take 12 times as many iterations), epochs, checkpoint and evaluation periods, and a backbone freeze
of one iteration (so that both the freeze and the release run), and a tenth of the learning rate with a
fixed seed (the random "ImageNet" files are not calibrated layers). Optimizer, warm-up, schedule,
losses and sampler stay the config's: a few iterations stay in the warm-up, as a run's first
iterations do.
"""
import glob
import os
import re
import sys

import pytest

from fastreid.engine import default_argument_parser
from fastreid_val.engine import build_config, main
from fastreid_val.weights_file import load_weights_file

from .conftest import TINY_OPTS, run_tool
from .trees import fill_imagenet_cache, user_trees

ROOT = os.path.join(os.path.dirname(__file__), "..")
CONFIGS = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "configs", "*", "*.yml")))


def tiny_opts(config, input_size=48):
    """Overrides that make ``config`` a run of a few iterations on the tiny trees."""
    cfg = build_config(config)
    instances = cfg.DATALOADER.NUM_INSTANCE
    opts = ["INPUT.SIZE_TRAIN", f"[{input_size}, {input_size}]", "INPUT.SIZE_TEST", f"[{input_size}, {input_size}]",
            "SOLVER.IMS_PER_BATCH", str(2 * instances), "DATALOADER.NUM_WORKERS", "0", "TEST.IMS_PER_BATCH", "16",
            "SOLVER.MAX_EPOCH", "2", "SOLVER.FREEZE_ITERS", str(min(cfg.SOLVER.FREEZE_ITERS, 1)), "SOLVER.CHECKPOINT_PERIOD", "1",
            "TEST.EVAL_PERIOD", "2", "TEST.RERANK.ENABLED", "False", "RUN.LOG_PERIOD", "1",
            # A warm-up and delay that fit a run of 2 epochs (the recipes' own, longer than it, are refused).
            "SOLVER.WARMUP_ITERS", "1", "SOLVER.DELAY_EPOCHS", "0",
            # A hundredth of the recipe's learning rate (what a tenth of it during the recipe's warm-up of
            # thousands of iterations, at its factor 0.1, gave before) and a fixed seed: on the random
            # "ImageNet" files, full-rate steps can blow FastReID's non-local blocks (AGW, SBS) up to NaN
            # features, which the evaluation rightly refuses; real ImageNet weights start from calibrated layers.
            "SOLVER.BASE_LR", str(cfg.SOLVER.BASE_LR / 100), "RUN.SEED", "0"]
    if "SynthVeRi" in cfg.DATASETS.NAMES:
        # TINY_OPTS's 24 identities at 4 images each, twelve identities a batch: 2 iterations an epoch, as
        # few as the other trees take (at 8 images each, two identities a batch took 24).
        opts += TINY_OPTS + ["DATASETS.SYNTHVERI.IMAGES_PER_ID", "4", "SOLVER.IMS_PER_BATCH", str(12 * instances)]
    if cfg.MODEL.BACKBONE.NAME == "build_sie_vit_backbone":
        opts += VIT_TINY_OPTS
    return opts


# The ViT recipes at FastReID's small depth on one 16x16 patch (2 tokens: a step's cost is per token), one
# epoch without warm-up (checkpointed once), from scratch: the ImageNet ViT file's path (cache, download,
# strict load) is tested in tests/test_vit.py.
VIT_TINY_OPTS = ["MODEL.BACKBONE.DEPTH", "small", "INPUT.SIZE_TRAIN", "[16, 16]", "INPUT.SIZE_TEST", "[16, 16]",
                 "SOLVER.MAX_EPOCH", "1", "SOLVER.WARMUP_ITERS", "0", "TEST.EVAL_PERIOD", "1",
                 "MODEL.BACKBONE.PRETRAIN", "False"]


@pytest.fixture(scope="module")
def user_env(tmp_path_factory):
    """``$FASTREID_DATASETS`` with the three trees (SynthVeRi is generated there on first use) and
    ``$TORCH_HOME`` with the ImageNet files."""
    root = str(tmp_path_factory.mktemp("user_datasets"))
    user_trees(root)
    torch_home = str(tmp_path_factory.mktemp("torch_home"))
    fill_imagenet_cache(torch_home)
    saved = {k: os.environ.get(k) for k in ("FASTREID_DATASETS", "TORCH_HOME")}
    os.environ.update(FASTREID_DATASETS=root, TORCH_HOME=torch_home)
    yield root, torch_home
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _run(config, out, *extra, eval_only=False, resume=False):
    argv = ["--config-file", os.path.join(ROOT, config)] + (["--eval-only"] if eval_only else []) \
        + (["--resume"] if resume else [])
    args = default_argument_parser().parse_args(argv + tiny_opts(config) + ["OUTPUT_DIR", str(out), *extra])
    return main(args)


def _metrics(results):
    """The metrics of each test set (one test set: FastReID returns its metrics alone)."""
    return results if all(isinstance(v, dict) for v in results.values()) else {"": results}


# The ViT recipe the resume test goes on from: trained once, for the sweep and for that test.
VIT_VAL = "configs/VeRi/bagtricks_vit_val.yml"


@pytest.fixture(scope="module")
def vit_val_run(user_env, tmp_path_factory):
    """``VIT_VAL``'s tiny run: (output folder, results); its checkpoints go at the end of the module."""
    import shutil

    out = tmp_path_factory.mktemp("vit_val")
    yield out, _run(VIT_VAL, out)
    shutil.rmtree(out, ignore_errors=True)


# The sweep checkpoints at its last epoch only (best and final): a checkpoint of a 2-epoch run costs up to
# 2 s (MGN's with Adam's state is 0.8 GB), and the periodic one mid-run is the kill-resume tier's below,
# which resumes from it in each meta-architecture family.
SWEEP_OPTS = ["SOLVER.CHECKPOINT_PERIOD", "2"]


@pytest.mark.parametrize("config", CONFIGS)
def test_every_config_trains_and_evaluates(user_env, tmp_path, request, config):
    out, results = request.getfixturevalue("vit_val_run") if config == VIT_VAL else \
        (tmp_path, _run(config, tmp_path, *SWEEP_OPTS))
    for name, metrics in _metrics(results).items():
        assert 0.0 <= metrics["mAP"] <= 100.0 and 0.0 <= metrics["Rank-1"] <= 100.0, (name, metrics)
    assert os.path.isfile(out / "model_final.pth") and os.path.isfile(out / "model_best.pth")
    for checkpoint in glob.glob(str(out / "*.pth")):  # best and final: read as a user's file is
        assert set(load_weights_file(checkpoint)) >= {"model", "optimizer", "epoch"}, checkpoint


# The paper's config and each meta-architecture family: BoT-style and SBS ViewpointBaseline, ViewpointMGN.
FAMILIES = ["configs/VeRi/val_r50.yml", "configs/VeRi/sbs_R50-ibn_val.yml", "configs/VeRi/mgn_R50-ibn_val.yml"]


def _train_cmd(config, out, *extra, resume=False):
    return [sys.executable, os.path.join(ROOT, "tools/train_net.py"), "--config-file", os.path.join(ROOT, config),
            *(["--resume"] if resume else []), *tiny_opts(config), "OUTPUT_DIR", str(out), *extra]


@pytest.mark.parametrize("config", FAMILIES)
def test_family_rerank_kill_resume_eval_only_export(user_env, tmp_path, capsys, tool_logging, config):
    import json
    import signal
    import subprocess
    import time

    # The run that is killed is a process of its own in every family; the paper's config also resumes and
    # exports as a user runs them (tools/train_net.py, tools/export_onnx.py), the other families in this
    # process (the same code, without a process that imports torch each time).
    as_user = config == FAMILIES[0]
    root, torch_home = user_env
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    out = tmp_path / "run"
    # 1. train, evaluating with re-ranking; killed (SIGKILL) after its first checkpoint
    long = ["SOLVER.MAX_EPOCH", "40", "TEST.EVAL_PERIOD", "40", "TEST.RERANK.ENABLED", "True"]
    proc = subprocess.Popen(_train_cmd(config, out, *long), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    tag, deadline = out / "last_checkpoint", time.time() + 300
    while time.time() < deadline and proc.poll() is None and not (tag.exists() and tag.read_text().strip()):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err[-3000:]
    state = load_weights_file(str(out / tag.read_text().strip()))  # a resume point reads safely
    killed_at = state["epoch"]
    cached = os.path.join(torch_home, "checkpoints", "resnet50_ibn_a-d9d0bb7b.pth" if "ibn" in config
                          else "resnet50-19c8e357.pth")
    assert yaml_value(out / "config.yaml", "PRETRAIN_PATH") == cached  # the ImageNet file came from the cache
    # 2. --resume: continues after the checkpoint's epoch and evaluates with re-ranking at the end
    resume = ["SOLVER.MAX_EPOCH", str(killed_at + 3), "TEST.EVAL_PERIOD", "40", "TEST.RERANK.ENABLED", "True"]
    if as_user:
        proc = subprocess.run(_train_cmd(config, out, *resume, resume=True), env=env, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
    else:
        _run(config, out, *resume, resume=True)
    log = (out / "log.txt").read_text()
    assert f"Starting training from epoch {killed_at + 1}\n" in log
    if as_user:  # a training process of its own: every CPU thread flushes denormals (engine/denormals.py)
        assert re.search(r"RUN.FLUSH_DENORMAL True: all \d+ CPU threads flush denormal floats to zero", log), log[:3000]
    resumed = json.load(open(out / "results.json"))["metrics"]["VeRiViewpoint"]
    assert 0 <= resumed["mAP"] <= 100 and "xview-mAP" in resumed
    # 3. --eval-only from the checkpoint: no ImageNet file is needed, the same metrics come back
    final = str(out / "model_final.pth")
    metrics = _run(config, tmp_path / "eval", "MODEL.WEIGHTS", final, "TEST.RERANK.ENABLED", "True",
                   "MODEL.BACKBONE.PRETRAIN_PATH", "/moved/away.pth", eval_only=True)
    assert metrics["mAP"] == pytest.approx(resumed["mAP"], abs=1e-4)
    # 4. tools/export_onnx.py on that checkpoint
    export = ["--config-file", os.path.join(ROOT, config), "--weights", final, "--num-images", "4",
              *tiny_opts(config)[:4]]
    if as_user:
        proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools/export_onnx.py"), *export], env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
    else:
        code, _, err = run_tool("export_onnx", export, capsys)
        assert code == 0, err[-3000:]
    assert os.path.getsize(str(out / "model_final.onnx")) > 1_000_000


def yaml_value(path, key):
    import yaml

    cfg = yaml.safe_load(open(path))
    return cfg["MODEL"]["BACKBONE"][key]


def test_vit_resume_and_eval_only(vit_val_run, tmp_path):
    """A ViT recipe (VAL twin, camera x view SIE) resumes from its checkpoint and evaluates --eval-only
    from it to the same metrics; in one process (the kill/resume/export tier above runs the ResNet families)."""
    config = VIT_VAL
    swept, _ = vit_val_run  # one epoch, checkpointed: the sweep's run of this config
    out = tmp_path / "run"
    out.mkdir()
    # Its last checkpoint, linked into a folder of this test's (checkpoints are replaced by a rename, never
    # rewritten in place, so the sweep's files stay as they were).
    tag = (swept / "last_checkpoint").read_text().strip()
    for name in ("last_checkpoint", tag):
        os.link(swept / name, out / name)
    resumed = _run(config, out, "SOLVER.MAX_EPOCH", "2", resume=True)
    assert "Starting training from epoch 1\n" in (out / "log.txt").read_text()
    again = _run(config, tmp_path / "eval", "MODEL.WEIGHTS", str(out / "model_final.pth"), eval_only=True)
    assert again["mAP"] == pytest.approx(resumed["mAP"], abs=1e-4) and "xview-mAP" in again
