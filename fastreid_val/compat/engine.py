"""S6, S13, S16: FastReID's engine (distributed launch and DDP arguments, train iterator).

See :mod:`fastreid_val.compat`.
"""
import contextlib
import importlib
import logging

import torch

logger = logging.getLogger(__name__)


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
    """S6: DDP that passes ``device_ids`` only for a model that lives on a GPU.

    S16: ``DefaultTrainer.__init__`` (``fastreid/engine/defaults.py:211``) asks for
    ``broadcast_buffers=False``, which torch 2.13 deprecated (a ``FutureWarning`` on every distributed
    run) for ``forward_sync_buffers``. FastReID's wish is translated: ``forward_sync_buffers=False``, so
    BatchNorm statistics stay per process during training, as upstream meant. The one difference the
    warning names: the new argument still broadcasts rank 0's buffers once, at construction, where
    ``broadcast_buffers=False`` left them out. Here every rank builds the same model from the same
    config and weights file (a resume loads its checkpoint after the wrap), so the buffers are equal
    before that broadcast and stay so after it; no rank-local buffer exists to be lost.
    """
    from torch.nn.parallel import DistributedDataParallel

    if next(model.parameters()).device.type != "cuda":
        device_ids = None
    if "broadcast_buffers" in kwargs and "forward_sync_buffers" not in kwargs:
        kwargs["forward_sync_buffers"] = kwargs.pop("broadcast_buffers")
    return DistributedDataParallel(model, device_ids=device_ids, **kwargs)


def _launch_module():
    # ``fastreid.engine`` re-exports the function ``launch`` under the submodule's name.
    return importlib.import_module("fastreid.engine.launch")


_UPSTREAM_WORKER = None


def _patch_distributed():
    global _UPSTREAM_WORKER
    import fastreid.engine.defaults as defaults

    launch = _launch_module()
    if _UPSTREAM_WORKER is None:
        _UPSTREAM_WORKER = launch._distributed_worker
    if not torch.cuda.is_available():
        launch._distributed_worker = _distributed_worker_cpu
    defaults.DistributedDataParallel = _ddp


@contextlib.contextmanager
def distributed_worker_for(device):
    """S6 on a machine that has CUDA: processes that ``launch`` starts in this block use gloo without a
    CUDA device when the configured ``MODEL.DEVICE`` is not CUDA, and upstream's NCCL worker otherwise."""
    launch = _launch_module()
    chosen = launch._distributed_worker
    launch._distributed_worker = _UPSTREAM_WORKER if str(device).startswith("cuda") else _distributed_worker_cpu
    try:
        yield
    finally:
        launch._distributed_worker = chosen


def restart_train_iterator(trainer) -> None:
    """S13: start a new iterator over ``trainer.data_loader`` in the running train loop.

    ``SimpleTrainer.__init__`` (``fastreid/engine/train_loop.py:221``) takes ``iter(data_loader)`` once,
    before ``resume_or_load`` knows the epoch to resume at, and FastReID has no public way to restart
    it. A resumed run sets its sampler to skip the images already seen, then needs a fresh iterator
    for the skip to apply (otherwise the already-prefetched first epoch is replayed).

    On CUDA the loader is ``DataLoaderX``, whose ``__iter__`` returns the loader itself with a new
    background thread (``fastreid/data/data_utils.py:150``): the first thread, blocked on its full
    queue, and its ``NUM_WORKERS`` worker processes would stay for the whole run. It is shut down first.
    """
    loader = trainer.data_loader
    if callable(getattr(loader, "shutdown", None)):
        loader.shutdown()
    trainer._trainer._data_loader_iter = iter(loader)
