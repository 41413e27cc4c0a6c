"""The levers on the main job's training step, timed side by side (``python benchmarks/train_step.py --case demo``).

For the demo's Softmax and VAL recipes (MobileNetV2 1.0x, 64x64, batch 64, C=200 identities; random
weights, which cost the same step as ImageNet's), on one batch of the recipe's own training loader:

* ms per step of eager NCHW float32, channels-last (the recipes' ``RUN.CHANNELS_LAST``), channels-last on
  one thread, + ``RUN.COMPILE``, + ``RUN.BF16``, interleaved round after round (:func:`.timing.interleaved`);
* the full loop against the same step on the batch in memory, for each of the recipe's two loaders
  (``LOADERS``: its default, the images in memory jittered a batch at a time in the training process,
  and FastReID's file loader with its 2 workers), in alternating blocks of consecutive steps (interleaved
  with other candidates, workers would fill their queue during the others' steps and hide what they
  cost), and the mean time a step of the full loop waits for its batch;
* the compile time of ``RUN.COMPILE`` (first step minus a compiled step), each in a fresh process as a
  training is, in the demo's order: Softmax, then VAL (which shares Softmax's backbone) on an empty kernel
  cache, then both again on the cache they filled (a second ``make demo``); and the break-even iteration
  count, compile time / time saved a step. A real run compiles once more for evaluation (eval-mode graph,
  test batch), so the break-even here is a lower bound.

``--trained`` (:func:`measure_trained`) times ``RUN.FLUSH_DENORMAL`` instead, which a fresh model cannot
show: a step from the weights and optimizer state a finished demo run ends with (where denormal floats
appear), with the mode off and on, each in a fresh process (it is a thread's mode, set before torch's
threads start), alternating round after round.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from fastreid.utils.events import EventStorage

from ..engine import build_config
from ..engine.denormals import flush_denormals
from ..engine.environment import describe, run_environment
from ..engine.trainer import ViewpointTrainer
from ..errors import MissingFileError
from ..weights_file import load_weights_file
from .timing import interleaved

__all__ = ["measure", "first_compiled_step", "measure_trained", "trained_step", "CONFIGS", "VARIANTS", "TRAINED"]

CONFIGS = {"Softmax": "configs/SynthVeRi/softmax_mnv2.yml", "VAL": "configs/SynthVeRi/val_mnv2.yml"}
OPTS = ["MODEL.BACKBONE.PRETRAIN", "False", "MODEL.HEADS.NUM_CLASSES", "200"]
VARIANTS = {  # name: RUN overrides on the recipe (which sets RUN.CHANNELS_LAST True)
    "eager NCHW": ["RUN.CHANNELS_LAST", "False"],
    "channels-last (default)": [],
    "channels-last, 1 thread": [],
    "channels-last + compile": ["RUN.COMPILE", "True"],
    "channels-last + bf16": ["RUN.BF16", "True"],
}
BASE, RECIPE_ITERATIONS = "channels-last (default)", 900
TRAINED = {"Softmax": "output/synthveri/softmax_mnv2/model_final.pth",  # what `make demo` leaves
           "VAL": "output/synthveri/val_mnv2/model_final.pth"}
LOADERS = {  # name: DATALOADER overrides on the recipe
    "in memory (default)": [],
    "file loader, 2 workers": ["DATALOADER.IN_MEMORY", "off"],
}


def _model(config, overrides=()):
    cfg = build_config(config, [*OPTS, *overrides])
    model = ViewpointTrainer.build_model(cfg)
    model.train()
    return cfg, model, torch.optim.Adam(model.parameters(), lr=1e-4)


def _step(model, opt, batch=None, loader=None, threads=None):
    """One training step on ``batch`` (its images copied: the model normalises them in place) or on the
    loader's next batch."""
    def run():
        start = time.perf_counter()
        data = next(loader) if loader is not None else {**batch, "images": batch["images"].clone()}
        run.waits.append(time.perf_counter() - start)
        if threads:
            before = torch.get_num_threads()
            torch.set_num_threads(threads)
        losses = model(data)
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
        if threads:
            torch.set_num_threads(before)
    run.waits = []  # seconds spent getting each step's batch
    return run


def _random_batch(n=64):
    """A batch shaped as the recipe's sampler gives it: 16 identities x 4 images."""
    g = torch.Generator().manual_seed(0)
    return {"images": torch.rand(n, 3, 64, 64, generator=g) * 255, "targets": torch.arange(n) // 4,
            "viewpoints": torch.randint(0, 2, (n,), generator=g), "camids": torch.randint(0, 8, (n,), generator=g)}


def first_compiled_step(config):
    """In this process (a child of :func:`measure`): the first step of ``config`` with ``RUN.COMPILE`` and
    the median of the three after it, printed as one JSON line."""
    _, model, opt = _model(config, ["RUN.COMPILE", "True"])
    step = _step(model, opt, _random_batch())
    times = []
    with EventStorage(0):
        for _ in range(4):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
    print(json.dumps({"first": times[0], "step": statistics.median(times[1:])}))


def _compile_seconds(cache):
    """{(name, "cold" | "cached"): compile seconds}, each measured in a fresh process on ``cache``."""
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache)
    out = {}
    for state in ("cold", "cached"):
        for name, config in CONFIGS.items():
            code = f"from fastreid_val.experiments.step_timing import first_compiled_step; first_compiled_step({config!r})"
            proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
            t = json.loads(proc.stdout.strip().splitlines()[-1])
            out[name, state] = t["first"] - t["step"]
    return out


def _blocks(full, memory, steps, rounds=2):
    """(full loop, in memory) mean seconds a step over ``rounds`` alternating blocks of ``steps`` steps."""
    spent = {"full": 0.0, "memory": 0.0}
    for _ in range(rounds):
        for key, fn in (("full", full), ("memory", memory)):
            start = time.perf_counter()
            for _ in range(steps):
                fn()
            spent[key] += time.perf_counter() - start
    return spent["full"] / (rounds * steps), spent["memory"] / (rounds * steps)


def measure(steps=5, loop_only=False):
    """Print the table of the levers, the compile times with their break-even, and the full-loop ratios
    (``loop_only``: the full-loop ratios alone, a minute or two)."""
    os.environ.setdefault("FASTREID_DATASETS", "datasets")
    load = os.getloadavg()[0]
    cache = tempfile.mkdtemp(prefix="inductor-bench-")  # cold: an empty cache of its own, removed at the end
    try:
        compile_s = {} if loop_only else _compile_seconds(cache)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # the compiled candidates below start warm
        ms, loop = {}, {}
        with EventStorage(0):
            for name, config in CONFIGS.items():
                cfg, model, opt = _model(config)
                loader = iter(ViewpointTrainer.build_train_loader(cfg))
                batch = next(loader)
                candidates = {}
                for variant, overrides in ({BASE: []} if loop_only else VARIANTS).items():
                    _, m, o = (cfg, model, opt) if variant == BASE else _model(config, overrides)
                    candidates[variant] = _step(m, o, batch, threads=1 if "1 thread" in variant else None)
                if not loop_only:
                    times = interleaved(candidates, rounds=steps, warmup=2)
                    ms.update({(name, v): t * 1e3 for v, t in times.items()})
                for kind, overrides in LOADERS.items():
                    if overrides:
                        loader = iter(ViewpointTrainer.build_train_loader(build_config(config, [*OPTS, *overrides])))
                    for _ in range(2):  # workers started, their queue filled
                        _step(model, opt, loader=loader)()
                    fed = _step(model, opt, loader=loader)
                    full, memory = _blocks(fed, candidates[BASE], steps)
                    loop[name, kind] = (full * 1e3, memory * 1e3, statistics.mean(fed.waits) * 1e3)
                    del loader  # its workers stop
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(report(ms, compile_s, loop, steps, describe(run_environment()), (load, os.getloadavg()[0])))


def report(ms, compile_s, loop, steps, machine, load):
    names = list(CONFIGS)
    lines = [f"ms a training step, batch 64, 64x64, MobileNetV2 1.0x; median of {steps} interleaved rounds; "
             f"{machine}; load average {load[0]:.1f} at the start, {load[1]:.1f} at the end"]
    if ms:
        lines += _levers(ms, compile_s, names)
    for n in names:
        for kind in LOADERS:
            full, memory, wait = loop[n, kind]
            lines.append(f"full loop, {n}, {kind}: {full:.0f} ms a step with the loader against {memory:.0f} ms on "
                         f"the batch in memory: {full / memory:.2f}x; waiting for the next batch: {wait:.0f} ms a step")
    return "\n".join(lines)


def _levers(ms, compile_s, names):
    lines = ["", "| step | " + " | ".join(f"{n} ms | {n} speed-up vs eager NCHW" for n in names) + " |",
             "|---|" + "---|---|" * len(names)]
    for variant in VARIANTS:
        cells = [f"{ms[n, variant]:.0f} | {ms[n, 'eager NCHW'] / ms[n, variant]:.2f}x" for n in names]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    lines.append("")
    for n in names:
        saved = (ms[n, BASE] - ms[n, "channels-last + compile"]) / 1e3
        parts = []
        for state in ("cold", "cached"):
            s = compile_s[n, state]
            even = f"break-even after {s / saved:.0f} iterations" if saved > 0 else "never breaks even"
            label = state if (n, state) != (names[-1], "cold") else f"after {names[0]}'s first run"
            parts.append(f"{label} {s:.1f} s ({even})")
        lines.append(f"RUN.COMPILE, {n}: compile time {'; '.join(parts)}; the recipe trains {RECIPE_ITERATIONS}")
    return lines


def trained_step(config, checkpoint, flush, steps):
    """In this process (a child of :func:`measure_trained`), ``RUN.FLUSH_DENORMAL`` ``flush`` set first: the
    median of ``steps`` training steps, after 2 more, from ``checkpoint``'s weights and optimizer state, on
    4 batches of the recipe's loader in turn; printed as one JSON line."""
    flush_denormals(flush)
    cfg, model, _ = _model(config)
    state = load_weights_file(checkpoint)
    model.load_state_dict(state["model"])
    opt, _ = ViewpointTrainer.build_optimizer(cfg, model)
    opt.load_state_dict(state["optimizer"])
    loader = iter(ViewpointTrainer.build_train_loader(cfg))
    steps_on = [_step(model, opt, next(loader)) for _ in range(4)]
    times = []
    with EventStorage(0):
        for i in range(steps + 2):
            start = time.perf_counter()
            steps_on[i % 4]()
            times.append(time.perf_counter() - start)
    print(json.dumps({"step": statistics.median(times[2:])}))


def measure_trained(steps=10, rounds=3, checkpoints=None):
    """Print ms a step with ``RUN.FLUSH_DENORMAL`` off and on (the default) from each recipe's finished run
    (``checkpoints``: {method: model_final.pth}, :data:`TRAINED` by default), the median of ``rounds``
    fresh processes a setting, alternating."""
    os.environ.setdefault("FASTREID_DATASETS", "datasets")
    checkpoints = checkpoints or TRAINED
    for path in checkpoints.values():
        if not os.path.isfile(path):
            raise MissingFileError(f"{path} does not exist: --trained times steps from the demo's finished runs; "
                                   "run `make demo` first (it writes both)")
    load = os.getloadavg()[0]
    ms = {}
    for name, config in CONFIGS.items():
        for _ in range(rounds):
            for flush in (False, True):
                code = ("from fastreid_val.experiments.step_timing import trained_step; "
                        f"trained_step({config!r}, {checkpoints[name]!r}, {flush}, {steps})")
                proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
                ms.setdefault((name, flush), []).append(json.loads(proc.stdout.strip().splitlines()[-1])["step"] * 1e3)
    lines = [f"ms a training step from the demo's finished runs (weights and optimizer state), batch 64, 64x64, "
             f"MobileNetV2 1.0x; median of {steps} steps in each of {rounds} fresh processes a setting, median over "
             f"processes; {describe(run_environment())}; load average {load:.1f} at the start, "
             f"{os.getloadavg()[0]:.1f} at the end", "",
             "| step from a finished run | RUN.FLUSH_DENORMAL False ms | True (default) ms | speed-up |", "|---|---|---|---|"]
    for name in CONFIGS:
        off, on = statistics.median(ms[name, False]), statistics.median(ms[name, True])
        lines.append(f"| {name} | {off:.0f} | {on:.0f} | {off / on:.2f}x |")
    print("\n".join(lines))
