"""S3, S12: FastReID's data loaders. See :mod:`fastreid_val.compat`.
"""
import contextlib

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
