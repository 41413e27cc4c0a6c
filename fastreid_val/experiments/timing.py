"""Side-by-side timing for benchmarks/: candidates run interleaved, round after round, and the median
is reported. Each call is timed by ``torch.utils.benchmark.Timer``, which synchronises the accelerator
before and after, so a GPU figure is the kernels' time, not their launch."""
import os
import platform
import statistics

import torch
from torch.utils import benchmark

__all__ = ["interleaved", "machine", "device_name"]


def interleaved(candidates, rounds=7, warmup=2):
    """{name: median seconds} of calling each ``fn`` in ``candidates`` ({name: fn}), interleaved."""
    timers = {name: benchmark.Timer(stmt="fn()", globals={"fn": fn}, label=name) for name, fn in candidates.items()}
    times = {name: [] for name in candidates}
    for r in range(warmup + rounds):
        for name, timer in timers.items():
            measurement = timer.timeit(1)
            if r >= warmup:
                times[name].extend(measurement.times)
    return {name: statistics.median(t) for name, t in times.items()}


def device_name(device=None) -> str:
    """``cpu (N threads)`` or the CUDA device's name: printed beside every figure."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def machine():
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{device_name()}")
