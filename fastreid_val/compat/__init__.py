"""Every compatibility repair for FastReID 1.4.0 on current PyTorch / NumPy / CPU-only machines.

FastReID 1.4.0 (its only release) was written for torch 1.13 on CUDA machines. Each repair names what
upstream breaks (file and line in the 1.4.0 wheel) and when it applies, and is covered by a test in
``tests/test_compat.py`` that fails without it. They come in three kinds, by how far they reach:

**Overrides** of our own FastReID subclasses. They change nothing for other code in the process that
uses FastReID's classes directly; they live with the subclass they override:

* S8 ``DefaultTrainer.auto_scale_hyperparams`` (``fastreid/engine/defaults.py:458``) writes
  ``OUTPUT_DIR/config.yaml`` without creating ``OUTPUT_DIR``: ``ViewpointTrainer.auto_scale_hyperparams``.
* S9 ``build_reid_test_loader`` (``fastreid/data/build.py:113``), called with a config, ignores
  ``DATALOADER.NUM_WORKERS`` (always 4 workers): ``ViewpointTrainer.build_test_loader``
  (:func:`fastreid_val.data.build.build_viewpoint_test_loader`) passes it.
* S10 ``CommonMetricPrinter.write`` (``fastreid/utils/events.py:212``) divides by zero when it is called
  twice at one iteration before the timer's warm-up, which upstream's ``PeriodicWriter`` does at an
  epoch's end: ``ViewpointTrainer.build_hooks`` writes through
  :class:`fastreid_val.engine.writers.PeriodicWriter`, which writes each iteration once.
* S11 ``build_optimizer(contiguous=True)`` (``fastreid/solver/build.py:180``), called so by
  ``DefaultTrainer.build_optimizer``, moves parameters into one flat buffer whose gradient is the
  concatenation of the parameters' gradients. ``SimpleTrainer.run_step`` calls
  ``optimizer.zero_grad()``, which sets gradients to ``None`` since torch 2.0: new gradient tensors
  are then allocated, the flat buffer's gradient stays zero and *no parameter is ever updated*
  (silently): ``ViewpointTrainer.build_optimizer`` keeps the parameters separate.
* S13 ``SimpleTrainer.__init__`` (``fastreid/engine/train_loop.py:221``) takes the training data
  iterator once, before a resumed run knows where to continue, with no public way to restart it:
  :func:`~fastreid_val.compat.engine.restart_train_iterator`, called by
  ``ViewpointTrainer.resume_or_load``, starts a new one so the sampler's skip applies (after shutting
  down the first one's background thread, which ``DataLoaderX`` would leave blocked on CUDA).
* S7 ``AMPTrainer.run_step`` (``fastreid/engine/train_loop.py:335``) asserts CUDA: AMP is turned off
  on CPU by :func:`fastreid_val.config.resolve_device`, with a log line (a config resolution).

**Import-time repairs**, unavoidable: FastReID cannot be imported without them (``imports.py``).

* S1 ``collections.Mapping`` was removed in Python 3.10; ``fastreid/data/build.py:12`` and
  ``fastreid/evaluation/testing.py:5`` import it, which blocks ``fastreid.engine``/``evaluation``.
* S2 ``torch._six`` was removed in torch 2.0; ``fastreid/data/build.py:11`` imports
  ``string_classes`` from it, which blocks all of ``fastreid.data``.

**Patches of FastReID's module-level code**, applied by ``apply()``, for code paths that our
subclasses reach only through upstream functions with no extension point. They change FastReID for
the whole process, and apply only where upstream cannot work at all (mostly: without CUDA):

* S3 ``DataLoaderX`` (``fastreid/data/data_utils.py:139``), which ``build_reid_train_loader`` and
  ``build_reid_test_loader`` construct, creates a ``torch.cuda.Stream`` and moves batches to CUDA in a
  background thread: replaced by a plain ``DataLoader`` on CPU (``data.py``). On a machine with CUDA,
  a run whose ``MODEL.DEVICE`` is not CUDA gets the plain loader too: our loader builders construct
  it within :func:`~fastreid_val.compat.data.loader_for_device` (the choice follows the configured
  device, not the machine).
* S4 ``ReidEvaluator._compile_dependencies`` (``fastreid/evaluation/reid_evaluation.py:136``) runs
  ``make`` inside site-packages and ``sys.exit(1)`` when that fails. The compiled evaluator is built
  at install time (``tools/build_rank_cylib.py``); at run time we only check for it and warn once
  when FastReID's own ``ReidEvaluator`` falls back to Python (``ViewpointReidEvaluator`` counts ranks in
  torch and builds nothing). Applies everywhere (``evaluation.py``).
* S5 ``build_dist(metric="jaccard")`` (``fastreid/utils/compute_dist.py:54``), called inside
  ``ReidEvaluator.evaluate``, hard-codes ``search_option=0``: ``features.cuda()`` (fails without
  CUDA) and faiss-GPU search through ``faiss.cast_integer_to_long_ptr``
  (``fastreid/utils/faiss_utils.py:19``), which current faiss (1.15) no longer has, so with faiss-GPU
  the first evaluation crashes (before FastReID's ``PeriodicCheckpointer`` writes the checkpoint);
  its CPU path (``search_option=3``) holds three dense N x N matrices and loops in Python. Re-ranking
  is done by :mod:`fastreid_val.evaluation.rerank` instead (torch, sparse, on the features' device,
  same results within float32 rounding); no faiss-GPU code path is reachable. Applies everywhere
  (``evaluation.py``).
* S6 ``_distributed_worker`` (``fastreid/engine/launch.py:79``) asserts CUDA, hard-codes the NCCL
  backend and ``torch.cuda.set_device``; ``DefaultTrainer.__init__``
  (``fastreid/engine/defaults.py:207``) passes CUDA ``device_ids`` to DDP. Without CUDA: gloo, and
  DDP without ``device_ids`` (``engine.py``). On a machine with CUDA, ``tools/train_net.py`` launches
  within :func:`~fastreid_val.compat.engine.distributed_worker_for`, so a run whose ``MODEL.DEVICE``
  is not CUDA gets gloo there too.
* S16 ``DefaultTrainer.__init__`` (``fastreid/engine/defaults.py:211``) passes DDP
  ``broadcast_buffers=False``, deprecated since torch 2.13 with a ``FutureWarning`` on every distributed
  run: the DDP of S6 passes it on as ``forward_sync_buffers=False`` (buffers not synchronised during
  training, as upstream asks; at construction rank 0's equal buffers are broadcast once). Applies
  everywhere (``engine.py``).
* S12 ``BackgroundGenerator.run`` (``fastreid/data/data_utils.py:126``), the thread behind the CUDA
  ``DataLoaderX``, has no exception handling: when a loader worker fails (an unreadable image), the
  thread dies without queueing its end marker and the training loop waits in ``queue.get()``
  forever. The error is queued and re-raised in the training loop instead. Applies everywhere (the
  class is used only with CUDA) (``data.py``).

**Warnings** that a user cannot act on, filtered where they arise (``noise.py``); every other
warning, the project's own included, still shows:

* S14 torch's "TypedStorage is deprecated", raised by FastReID's ``to_tensor``
  (``fastreid/data/transforms/functional.py:46``) once in every process that reads an image (each
  training and each of its loader workers).
* S15 torch's "No CUDA runtime is found, using CUDA_HOME=..." (``torch/utils/cpp_extension.py:183``),
  logged when FastReID's environment table (``fastreid/utils/collect_env.py:69``) probes CUDA_HOME on
  a machine with a CUDA toolkit folder and no GPU.

``apply()`` runs once, from ``fastreid_val/__init__.py``; it is idempotent.
"""
from .data import CPUDataLoader, _patch_background_generator, _patch_data_loader
from .engine import _ddp, _distributed_worker_cpu, _patch_distributed
from .evaluation import _patch_evaluator, build_dist, rank_cylib_available
from .imports import apply_pre_import_shims
from .noise import filter_upstream_noise

__all__ = ["apply", "apply_pre_import_shims", "build_dist", "rank_cylib_available", "CPUDataLoader"]

_APPLIED = False


def apply() -> None:
    """Apply every shim once. Safe to call repeatedly."""
    global _APPLIED
    if _APPLIED:
        return
    apply_pre_import_shims()
    filter_upstream_noise()
    _patch_data_loader()
    _patch_evaluator()
    _patch_distributed()
    _patch_background_generator()
    _APPLIED = True
