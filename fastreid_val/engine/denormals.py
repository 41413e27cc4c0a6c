"""``RUN.FLUSH_DENORMAL``: the CPU threads of a run flush denormal floats to zero (on by default).

Late in a CPU training some gradients and activations fall below float32's smallest normal number
(about 1.2e-38). x86 CPUs compute on such denormal numbers through a slow path, so the step slows
down as the model converges. On the 2-core Intel Xeon, the demo's Softmax run went from 0.22 s an
iteration in its first fifth to 0.29 s in its last. With flushing it stayed at 0.21-0.22 s, and the
run's metrics came out the same to the digit (docs/STUDY.md, Performance). Flushing treats denormal
inputs and results as zero (the CPU's FTZ and DAZ modes). CUDA kernels are untouched.

The mode belongs to each CPU thread, and torch's worker threads copy it from the thread that starts
them, when the process runs its first parallel operation. So it is set before any data or model
exists: in :func:`~fastreid_val.engine.launcher.setup`, the first thing a run's process does after
reading its config. Set later, it reaches the calling thread alone; :func:`flush_denormals` measures
how many threads it reached, and the launcher warns when that is not all of them.
"""
import torch

__all__ = ["flush_denormals", "threads_flushing"]

# 1e-30 is a normal float32; its product with 1e-10, about 1e-40, is denormal: zero where a thread flushes.
_NORMAL, _FACTOR = 1e-30, 1e-10
_PER_THREAD = 1 << 16  # elements of the probe each thread multiplies (above torch's parallel grain size)


def threads_flushing():
    """(threads that flush denormal results to zero, torch's intra-op threads), measured by a product
    that torch splits evenly across its threads."""
    threads = torch.get_num_threads()
    n = threads * _PER_THREAD
    kept = int((torch.full((n,), _NORMAL) * _FACTOR).count_nonzero())
    return round((n - kept) / n * threads), threads


def flush_denormals(enabled=True):
    """Turn the mode on (or off) for this thread, and for the threads torch starts after it.

    Returns (threads that now do as asked, torch's intra-op threads), or None where the CPU has no such
    mode (``torch.set_flush_denormal`` supports x86 CPUs with SSE3)."""
    if not torch.set_flush_denormal(enabled):
        return None
    flushing, threads = threads_flushing()
    return (flushing if enabled else threads - flushing), threads
