"""S6, S13: FastReID's engine (distributed launch, train iterator).

See :mod:`fastreid_val.compat`.
"""
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
    """S6: DDP that passes ``device_ids`` only for a model that lives on a GPU."""
    from torch.nn.parallel import DistributedDataParallel

    if next(model.parameters()).device.type != "cuda":
        device_ids = None
    return DistributedDataParallel(model, device_ids=device_ids, **kwargs)


def _patch_distributed():
    import fastreid.engine.defaults as defaults

    # ``fastreid.engine`` re-exports the function ``launch`` under the submodule's name.
    launch = importlib.import_module("fastreid.engine.launch")

    if not torch.cuda.is_available():
        launch._distributed_worker = _distributed_worker_cpu
    defaults.DistributedDataParallel = _ddp


def restart_train_iterator(trainer) -> None:
    """S13: start a new iterator over ``trainer.data_loader`` in the running train loop.

    ``SimpleTrainer.__init__`` (``fastreid/engine/train_loop.py:221``) takes ``iter(data_loader)`` once,
    before ``resume_or_load`` knows the epoch to resume at, and FastReID has no public way to restart
    it. A resumed run sets its sampler to skip the images already seen, then needs a fresh iterator
    for the skip to apply (otherwise the already-prefetched first epoch is replayed).
    """
    trainer._trainer._data_loader_iter = iter(trainer.data_loader)
