"""On a machine with a GPU, what a run does follows MODEL.DEVICE, not whether CUDA is present: the data
loader, the distributed backend and AMP. The GPU machine's branch is taken here with stand-ins for the
CUDA-only classes (FastReID's DataLoaderX and NCCL worker cannot be built without a GPU)."""
import threading

import pytest
import torch

from fastreid_val.compat import CPUDataLoader, data as compat_data, engine as compat_engine
from fastreid_val.config import resolve_device
from fastreid_val.data.build import build_viewpoint_test_loader, build_viewpoint_train_loader
from fastreid_val.engine import build_config

from .trees import veri_tree


class CudaLoaderStandIn(CPUDataLoader):
    """Stands for FastReID's DataLoaderX, the loader builders construct on a machine with CUDA."""


@pytest.fixture
def gpu_machine_loader(tmp_path, monkeypatch):
    from fastreid.data import build

    veri_tree(str(tmp_path))
    monkeypatch.setenv("FASTREID_DATASETS", str(tmp_path))
    monkeypatch.setattr(build, "DataLoaderX", CudaLoaderStandIn)


def _cfg(device):
    cfg = build_config("configs/VeRi/val_r50.yml", ["DATALOADER.NUM_WORKERS", "0", "SOLVER.IMS_PER_BATCH", "8",
                                                    "INPUT.SIZE_TRAIN", "[16, 16]", "INPUT.SIZE_TEST", "[16, 16]"])
    cfg.MODEL.DEVICE = device  # as on a machine with CUDA (build_config maps cuda to cpu here)
    return cfg


@pytest.mark.parametrize("device, cls", [("cpu", CPUDataLoader), ("cuda", CudaLoaderStandIn),
                                         ("cuda:1", CudaLoaderStandIn)])
def test_loader_follows_the_configured_device(gpu_machine_loader, device, cls):
    train = build_viewpoint_train_loader(_cfg(device))
    test, _ = build_viewpoint_test_loader(_cfg(device), "VeRiViewpoint")
    assert type(train) is cls and type(test) is cls
    from fastreid.data import build

    assert build.DataLoaderX is CudaLoaderStandIn  # the choice is scoped to our builders


def test_distributed_backend_follows_the_configured_device(monkeypatch):
    launch = compat_engine._launch_module()
    nccl_worker = object()  # stands for upstream's NCCL worker
    monkeypatch.setattr(compat_engine, "_UPSTREAM_WORKER", nccl_worker)
    before = launch._distributed_worker
    with compat_engine.distributed_worker_for("cpu"):
        assert launch._distributed_worker is compat_engine._distributed_worker_cpu
    with compat_engine.distributed_worker_for("cuda"):
        assert launch._distributed_worker is nccl_worker
    assert launch._distributed_worker is before


def test_amp_follows_the_configured_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cfg = build_config("configs/VeRi/sbs_R50-ibn.yml", ["MODEL.DEVICE", "cpu"])  # AMP on in the recipe
    assert resolve_device(cfg).SOLVER.AMP.ENABLED is False
    cfg = build_config("configs/VeRi/sbs_R50-ibn.yml")
    assert cfg.MODEL.DEVICE == "cuda" and cfg.SOLVER.AMP.ENABLED is True


def test_resume_shuts_the_first_loader_thread_down():
    """DataLoaderX's ``__iter__`` returns the loader with a new background thread; restarting the train
    iterator on resume must stop the first one (and its workers) rather than leave it blocked."""

    class ThreadedLoader:
        def __init__(self):
            self.threads = []

        def __iter__(self):
            stop = threading.Event()
            thread = threading.Thread(target=stop.wait, daemon=True)
            thread.stop = stop
            thread.start()
            self.threads.append(thread)
            return self

        def __next__(self):
            raise StopIteration

        def shutdown(self):
            for t in self.threads:
                t.stop.set()
                t.join(timeout=5)

    class Trainer:
        data_loader = ThreadedLoader()
        _trainer = type("Loop", (), {})()

    trainer = Trainer()
    trainer._trainer._data_loader_iter = iter(trainer.data_loader)
    compat_engine.restart_train_iterator(trainer)
    first, second = trainer.data_loader.threads
    assert not first.is_alive() and second.is_alive()
    second.stop.set()


def test_loader_choice_helper_restores_on_error():
    from fastreid.data import build

    before = build.DataLoaderX
    with pytest.raises(RuntimeError):
        with compat_data.loader_for_device("cpu"):
            raise RuntimeError
    assert build.DataLoaderX is before


def test_evaluation_follows_the_configured_device(monkeypatch):
    """Evaluation (distances, ranks, metric sums) runs on MODEL.DEVICE when CUDA is there, else on the CPU."""
    from fastreid_val.evaluation.chunked import evaluation_device

    cfg = build_config("", ["MODEL.DEVICE", "cpu"])
    cfg.MODEL.DEVICE = "cuda:1"  # as on a machine with CUDA (build_config maps cuda to cpu here)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert evaluation_device(cfg) == torch.device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert evaluation_device(cfg) == torch.device("cpu")
    cfg.MODEL.DEVICE = "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert evaluation_device(cfg) == torch.device("cpu")


def test_cuda_chunks_are_sized_from_the_free_device_memory(monkeypatch):
    """On CUDA a chunk takes half the device's free memory (asked of that device) at 64 B per distance;
    on the CPU about 4 M distances, whatever the device has."""
    from fastreid_val.evaluation import chunked

    asked = []
    free = 40 * 2 ** 30  # 40 GiB free of 80

    def mem_get_info(device=None):
        asked.append(torch.device(device))
        return free, 80 * 2 ** 30

    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    assert chunked.chunk_size(128517, torch.device("cuda:1")) == free // 2 // 64 // 128517 == 2610
    assert asked == [torch.device("cuda:1")]
    free = 2 ** 20  # almost nothing free: one query at a time, never none
    assert chunked.chunk_size(128517, "cuda") == 1
    assert chunked.chunk_size(128517, "cpu") == chunked.CHUNK_ELEMENTS // 128517 and len(asked) == 2
