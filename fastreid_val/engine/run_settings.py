"""``RUN``: how a run is driven (seed, log period, memory format, compile, bfloat16, denormals), read by the launcher
and the trainer."""
from fastreid.config import CfgNode as CN

__all__ = ["add_run_config"]


def add_run_config(cfg):
    cfg.RUN = CN()
    # Seed of torch, NumPy and Python RNGs (model init, identity sampler, augmentation);
    # -1 keeps FastReID's behaviour (a fresh random seed per run).
    cfg.RUN.SEED = -1
    # Iterations between writes of losses, ETA and metrics to console, metrics.json and TensorBoard
    # (FastReID's DefaultTrainer hard-codes 200, too rare for short CPU runs).
    cfg.RUN.LOG_PERIOD = 20
    # Keep the model's 4-D weights (and so its activations) in channels-last memory format. Same
    # results; on a CPU, depthwise convolutions (MobileNetV2) run about 1.6x faster this way.
    cfg.RUN.CHANNELS_LAST = False
    # Compile the backbone with torch.compile, kernels cached in the user's cache folder
    # (engine/step_levers.py). Off: on the 2-core CPU measured it did not pay within a 900-iteration run.
    cfg.RUN.COMPILE = False
    # Train under bfloat16 autocast (evaluation stays float32; engine/step_levers.py). Off: slower than
    # float32 on the CPU measured (docs/STUDY.md, Performance).
    cfg.RUN.BF16 = False
    # Flush denormal floats to zero on the run's CPU threads (engine/denormals.py): a CPU step no longer
    # slows down as values get tiny late in training (the demo's Softmax run: 0.29 s an iteration at
    # its end without, 0.21 s with), with the same metrics. CUDA kernels are untouched.
    cfg.RUN.FLUSH_DENORMAL = True
    # File to which the trainer appends one JSON line per write (iteration, losses, speed, ETA); the
    # demo's and tools/compare.py's console read it to show a progress bar. Empty: none.
    cfg.RUN.PROGRESS_FILE = ""
    return cfg
