"""Every compatibility shim for FastReID 1.4.0 on current PyTorch / NumPy / CPU-only machines.

FastReID 1.4.0 (its only release) was written for torch 1.13 on CUDA machines. This package is the
one place where the plugin repairs it; nothing else in ``fastreid_val`` patches FastReID.
Each shim names what upstream breaks (file and line in the 1.4.0 wheel), when it applies, and is
covered by a test in ``tests/test_compat.py`` that fails without it. On a machine with CUDA the
GPU code paths (CUDA-stream loader, AMP, NCCL) are left as upstream wrote them, except that the
CUDA loader's background thread passes errors on instead of hanging (S12), and re-ranking, whose
faiss-GPU path no longer runs, is replaced on every device (S5).

``apply()`` runs once, from ``fastreid_val/__init__.py``; it is idempotent. The shims live in
``imports.py`` (S1, S2), ``data.py`` (S3, S9, S12), ``evaluation.py`` (S4, S5) and ``engine.py``
(S6, S8, S10, S11, S13); S7 is a config resolution in :func:`fastreid_val.config.resolve_device`.

Shims applied *before* FastReID is imported (module-level names that upstream imports):

* S1 ``collections.Mapping`` was removed in Python 3.10; ``fastreid/data/build.py:12`` and
  ``fastreid/evaluation/testing.py:5`` import it, which blocks ``fastreid.engine``/``evaluation``.
* S2 ``torch._six`` was removed in torch 2.0; ``fastreid/data/build.py:11`` imports
  ``string_classes`` from it, which blocks all of ``fastreid.data``.
Shims applied *after* import (only without CUDA unless said otherwise):

* S3 ``DataLoaderX`` (``fastreid/data/data_utils.py:139``) creates a ``torch.cuda.Stream`` and
  moves batches to CUDA in a background thread: replaced by a plain ``DataLoader`` on CPU.
* S4 ``ReidEvaluator._compile_dependencies`` (``fastreid/evaluation/reid_evaluation.py:136``) runs
  ``make`` inside site-packages and ``sys.exit(1)`` when that fails (always). The compiled
  evaluator is built at install time (``tools/build_rank_cylib.py``); at run time we only check for
  it and warn once when evaluation falls back to Python. Applies everywhere.
* S5 ``build_dist(metric="jaccard")`` (``fastreid/utils/compute_dist.py:54``) hard-codes
  ``search_option=0``: ``features.cuda()`` (fails without CUDA) and faiss-GPU search through
  ``faiss.cast_integer_to_long_ptr`` (``fastreid/utils/faiss_utils.py:19``), which current faiss
  (1.15) no longer has, so with faiss-GPU the first evaluation crashes (before FastReID's
  ``PeriodicCheckpointer`` writes the checkpoint); its CPU path (``search_option=3``) holds three
  dense N x N matrices and loops in Python. Re-ranking is done by
  :mod:`fastreid_val.evaluation.rerank` instead (torch, sparse, on the features' device, same
  results within float32 rounding); no faiss-GPU code path is reachable. Applies everywhere.
* S6 ``_distributed_worker`` (``fastreid/engine/launch.py:79``) asserts CUDA, hard-codes the NCCL
  backend and ``torch.cuda.set_device``; ``DefaultTrainer.__init__``
  (``fastreid/engine/defaults.py:207``) passes CUDA ``device_ids`` to DDP. Without CUDA: gloo, and
  DDP without ``device_ids``.
* S7 ``AMPTrainer.run_step`` (``fastreid/engine/train_loop.py:335``) asserts CUDA. AMP is turned off
  on CPU by :func:`fastreid_val.config.resolve_device`, with a log line (no patch needed here).
* S8 ``DefaultTrainer.auto_scale_hyperparams`` (``fastreid/engine/defaults.py:418``) writes
  ``OUTPUT_DIR/config.yaml`` without creating ``OUTPUT_DIR``. Applies everywhere.
* S9 ``build_reid_test_loader`` (``fastreid/data/build.py:113``) ignores
  ``DATALOADER.NUM_WORKERS`` (always 4 workers). Applies everywhere.
* S10 ``CommonMetricPrinter.write`` (``fastreid/utils/events.py:212``) reads ``storage.history("time")``
  only after the timer's warm-up; in a run shorter than the warm-up the ``_last_write`` estimate
  divides by zero or the ``time`` key is absent. Applies everywhere.
* S11 ``build_optimizer(contiguous=True)`` (``fastreid/solver/build.py:180``), called so by
  ``DefaultTrainer.build_optimizer``, moves parameters into one flat buffer whose gradient is the
  concatenation of the parameters' gradients. ``SimpleTrainer.run_step`` calls
  ``optimizer.zero_grad()``, which sets gradients to ``None`` since torch 2.0: new gradient tensors
  are then allocated, the flat buffer's gradient stays zero and *no parameter is ever updated*
  (silently). Parameters stay separate instead. Applies everywhere.
* S12 ``BackgroundGenerator.run`` (``fastreid/data/data_utils.py:126``), the thread behind the CUDA
  ``DataLoaderX``, has no exception handling: when a loader worker fails (an unreadable image), the
  thread dies without queueing its end marker and the training loop waits in ``queue.get()``
  forever. The error is queued and re-raised in the training loop instead. Applies everywhere (the
  class is used only with CUDA).
* S13 ``SimpleTrainer.__init__`` (``fastreid/engine/train_loop.py:221``) takes the training data
  iterator once, before a resumed run knows where to continue, with no public way to restart it:
  :func:`~fastreid_val.compat.engine.restart_train_iterator` (called by ``ViewpointTrainer`` on
  resume) starts a new one so the sampler's skip applies. Applies everywhere.
"""
from .data import CPUDataLoader, _patch_background_generator, _patch_data_loader, _patch_test_loader
from .engine import (_ddp, _distributed_worker_cpu, _patch_distributed, _patch_metric_printer, _patch_optimizer,
                     _patch_output_dir)
from .evaluation import _patch_evaluator, build_dist, rank_cylib_available
from .imports import apply_pre_import_shims

__all__ = ["apply", "apply_pre_import_shims", "build_dist", "rank_cylib_available", "CPUDataLoader"]

_APPLIED = False


def apply() -> None:
    """Apply every shim once. Safe to call repeatedly."""
    global _APPLIED
    if _APPLIED:
        return
    apply_pre_import_shims()
    _patch_data_loader()
    _patch_evaluator()
    _patch_distributed()
    _patch_output_dir()
    _patch_test_loader()
    _patch_metric_printer()
    _patch_optimizer()
    _patch_background_generator()
    _APPLIED = True
