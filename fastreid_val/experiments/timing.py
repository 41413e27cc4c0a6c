"""Side-by-side timing for benchmarks/: : candidates run interleaved, round after round, and the median is reported."""
import statistics
import time


def interleaved(candidates, rounds=7, warmup=2):
    """{name: median seconds} of calling each ``fn`` in ``candidates`` ({name: fn}), interleaved."""
    times = {name: [] for name in candidates}
    for r in range(warmup + rounds):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            if r >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def machine():
    import os
    import platform

    import torch

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU'}, "
            f"{torch.get_num_threads()} threads")
