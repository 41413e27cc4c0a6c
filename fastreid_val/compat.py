"""Every compatibility shim for FastReID 1.4.0 on current PyTorch / NumPy / CPU-only machines.

FastReID 1.4.0 (its only release) was written for torch 1.13 on CUDA machines. This module is the
one place where the plugin repairs it; nothing else in ``fastreid_val`` patches FastReID.
Each shim names what upstream breaks (file and line in the 1.4.0 wheel), when it applies, and is
covered by a test in ``tests/test_compat.py`` that fails without it. On a machine with CUDA the
GPU code paths (CUDA-stream loader, faiss-GPU re-ranking, AMP, NCCL) are left as upstream wrote
them, except that the CUDA loader's background thread passes errors on instead of hanging (S12).

``apply()`` runs once, from ``fastreid_val/__init__.py``; it is idempotent.

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
  ``search_option=0`` (``features.cuda()`` + faiss GPU): use the faiss CPU path
  (``search_option=3``) when there is no GPU for faiss.
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
"""
import collections
import collections.abc
import functools
import importlib
import logging
import os
import sys
import types

import torch

logger = logging.getLogger(__name__)

_APPLIED = False


def _cuda() -> bool:
    return torch.cuda.is_available()


def apply_pre_import_shims() -> None:
    """S1, S2: names that FastReID imports at module level."""
    # S1
    for name in ("Mapping", "MutableMapping", "Sequence", "Iterable"):
        if not hasattr(collections, name):
            setattr(collections, name, getattr(collections.abc, name))
    # S2
    if "torch._six" not in sys.modules:
        try:
            importlib.import_module("torch._six")  # present on torch < 2.0
        except ImportError:
            six = types.ModuleType("torch._six")
            six.string_classes = (str, bytes)
            six.int_classes = (int,)
            six.inf = float("inf")
            sys.modules["torch._six"] = six
            torch._six = six


class CPUDataLoader(torch.utils.data.DataLoader):
    """S3: ``DataLoaderX``'s interface (``local_rank`` first, ``shutdown()``) without CUDA streams."""

    def __init__(self, local_rank, **kwargs):
        kwargs["pin_memory"] = False  # pinning needs an accelerator
        super().__init__(**kwargs)
        self.local_rank = local_rank

    def shutdown(self):
        pass


def _patch_data_loader():
    import fastreid.data.build as build

    if not _cuda():
        build.DataLoaderX = CPUDataLoader


_rank_warning_done = False


def rank_cylib_available() -> bool:
    try:
        from fastreid.evaluation.rank_cylib.rank_cy import evaluate_cy  # noqa: F401
    except ImportError:
        return False
    return True


def _checked_compile_dependencies(self):
    """S4: never compile inside site-packages at run time, never exit the process."""
    global _rank_warning_done
    if not rank_cylib_available() and not _rank_warning_done:
        logger.warning(
            "FastReID's compiled rank evaluator is not built; evaluation falls back to the "
            "(much slower) Python implementation. Build it with `python tools/build_rank_cylib.py`."
        )
        _rank_warning_done = True


def _patch_evaluator():
    from fastreid.evaluation import reid_evaluation

    reid_evaluation.ReidEvaluator._compile_dependencies = _checked_compile_dependencies
    reid_evaluation.build_dist = build_dist


def faiss_has_gpu() -> bool:
    import faiss

    return _cuda() and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def build_dist(feat_1, feat_2, metric="euclidean", **kwargs):
    """S5: ``fastreid.utils.compute_dist.build_dist`` with a CPU path for ``metric="jaccard"``."""
    from fastreid.utils import compute_dist

    if metric != "jaccard" or faiss_has_gpu():
        return compute_dist.build_dist(feat_1, feat_2, metric, **kwargs)
    feat = torch.cat((feat_1, feat_2), dim=0)
    # search_option=3 is upstream's faiss-CPU search (compute_dist.py:94).
    dist = compute_dist.compute_jaccard_distance(feat, k1=kwargs["k1"], k2=kwargs["k2"], search_option=3)
    return dist[: feat_1.size(0), feat_1.size(0):]


def _distributed_worker_cpu(local_rank, main_func, world_size, num_procs_per_machine, machine_rank,
                            dist_url, args):
    """S6: upstream's ``_distributed_worker`` with the gloo backend and no CUDA device."""
    import torch.distributed as dist
    from fastreid.utils import comm

    global_rank = machine_rank * num_procs_per_machine + local_rank
    dist.init_process_group(backend="gloo", init_method=dist_url, world_size=world_size, rank=global_rank)
    comm.synchronize()
    assert comm._LOCAL_PROCESS_GROUP is None
    num_machines = world_size // num_procs_per_machine
    for i in range(num_machines):
        ranks_on_i = list(range(i * num_procs_per_machine, (i + 1) * num_procs_per_machine))
        pg = dist.new_group(ranks_on_i)
        if i == machine_rank:
            comm._LOCAL_PROCESS_GROUP = pg
    main_func(*args)


def _ddp(model, device_ids=None, **kwargs):
    """S6: DDP that passes ``device_ids`` only for a model that lives on a GPU."""
    from torch.nn.parallel import DistributedDataParallel

    if next(model.parameters()).device.type != "cuda":
        device_ids = None
    return DistributedDataParallel(model, device_ids=device_ids, **kwargs)


def _patch_distributed():
    import fastreid.engine.defaults as defaults

    # ``fastreid.engine`` re-exports the function ``launch`` under the submodule's name.
    launch = importlib.import_module("fastreid.engine.launch")

    if not _cuda():
        launch._distributed_worker = _distributed_worker_cpu
    defaults.DistributedDataParallel = _ddp


def _patch_output_dir():
    from fastreid.engine.defaults import DefaultTrainer

    original = DefaultTrainer.auto_scale_hyperparams
    if getattr(original, "_fastreid_val_shim", False):
        return

    @functools.wraps(original)
    def auto_scale_hyperparams(cfg, num_classes):  # S8
        if cfg.OUTPUT_DIR:
            os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
        return original(cfg, num_classes)

    auto_scale_hyperparams._fastreid_val_shim = True
    DefaultTrainer.auto_scale_hyperparams = staticmethod(auto_scale_hyperparams)


def _patch_test_loader():
    import fastreid.data as data
    import fastreid.data.build as build
    import fastreid.engine.defaults as defaults

    original = build.build_reid_test_loader
    if getattr(original, "_fastreid_val_shim", False):
        return
    from_config = build._test_loader_from_config
    plain = original.__wrapped__  # the undecorated function, kept by ``configurable``

    @functools.wraps(original)
    def build_reid_test_loader(*args, **kwargs):  # S9
        from fastreid.config import CfgNode

        if args and isinstance(args[0], CfgNode):
            cfg = args[0]
            num_workers = kwargs.pop("num_workers", cfg.DATALOADER.NUM_WORKERS)
            call = from_config(cfg, *args[1:], **kwargs)
            return plain(**call, num_workers=num_workers)
        return original(*args, **kwargs)

    build_reid_test_loader._fastreid_val_shim = True
    build.build_reid_test_loader = build_reid_test_loader
    data.build_reid_test_loader = build_reid_test_loader
    defaults.build_reid_test_loader = build_reid_test_loader


def _patch_metric_printer():
    from fastreid.utils import events

    original = events.CommonMetricPrinter.write
    if getattr(original, "_fastreid_val_shim", False):
        return

    @functools.wraps(original)
    def write(self):  # S10
        storage = events.get_event_storage()
        if self._last_write is not None and self._last_write[0] == storage.iter:
            return  # second write at the same iteration: nothing new, and would divide by zero
        try:
            original(self)
        except (KeyError, ZeroDivisionError) as e:
            logger.debug("metric printer skipped iteration %d (%r)", storage.iter, e)

    write._fastreid_val_shim = True
    events.CommonMetricPrinter.write = write


def _patch_optimizer():
    import fastreid.engine.defaults as defaults
    from fastreid.solver import build as solver_build

    if getattr(defaults.build_optimizer, "_fastreid_val_shim", False):
        return

    @functools.wraps(solver_build.build_optimizer)
    def build_optimizer(cfg, model, contiguous=False):  # S11
        return solver_build.build_optimizer(cfg, model, contiguous=contiguous)

    build_optimizer._fastreid_val_shim = True
    defaults.build_optimizer = build_optimizer


class _RaisedInBackground:
    def __init__(self, error):
        self.error = error


def _patch_background_generator():
    from fastreid.data import data_utils

    gen = data_utils.BackgroundGenerator
    if getattr(gen.run, "_fastreid_val_shim", False):
        return
    upstream_run = gen.run

    def run(self):  # S12
        try:
            upstream_run(self)
        except BaseException as e:  # handed to the consumer thread, which re-raises it
            self.queue.put(_RaisedInBackground(e))

    def next(self):
        item = self.queue.get()
        if isinstance(item, _RaisedInBackground):
            raise item.error
        if item is None:
            raise StopIteration
        return item

    run._fastreid_val_shim = True
    run.__wrapped__, next.__wrapped__ = upstream_run, gen.next  # upstream, for the test that fails without
    gen.run, gen.next = run, next


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
