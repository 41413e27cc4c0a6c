"""What a run was measured on: seeded runs give the same numbers to the digit only on the same CPU
kernels (the instruction set torch dispatches to) and the same number of threads, or the same GPU."""
import platform

import torch

__all__ = ["run_environment", "describe", "cpu_model"]


def cpu_model():
    """The CPU's model name (``/proc/cpuinfo``), else what the platform module says."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_environment(device="cpu"):
    """``{"cpu", "cpu_capability", "threads", "torch", "gpu"}`` of this process (``gpu``: None on the CPU)."""
    gpu = None
    if str(device).startswith("cuda") and torch.cuda.is_available():
        gpu = torch.cuda.get_device_name()
    return {"cpu": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads(), "torch": torch.__version__, "gpu": gpu}


def describe(env):
    """One phrase: ``AMD EPYC (AVX2), 2 threads, torch 2.14.1`` (and the GPU when there is one)."""
    text = f"{env['cpu']} ({env['cpu_capability']}), {env['threads']} threads, torch {env['torch']}"
    return f"{env['gpu']}, {text}" if env.get("gpu") else text
