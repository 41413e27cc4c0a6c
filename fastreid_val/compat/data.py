"""S3, S9, S12: FastReID's data loaders. See :mod:`fastreid_val.compat`.
"""
import contextlib
import functools

import torch


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

    if not torch.cuda.is_available():
        build.DataLoaderX = CPUDataLoader


@contextlib.contextmanager
def loader_for_device(device):
    """S3 on a machine that has CUDA: FastReID's loader builders (``fastreid/data/build.py:89``, ``:150``)
    construct ``DataLoaderX``, which moves every batch to the GPU; for a run whose ``MODEL.DEVICE`` is not
    CUDA, the builders called in this block construct :class:`CPUDataLoader` instead. So the choice
    follows the configured device, not whether the machine has a GPU."""
    import fastreid.data.build as build

    if str(device).startswith("cuda"):
        yield
        return
    chosen, build.DataLoaderX = build.DataLoaderX, CPUDataLoader
    try:
        yield
    finally:
        build.DataLoaderX = chosen


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
