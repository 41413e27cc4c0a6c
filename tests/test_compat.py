"""Each FastReID 1.4.0 shim, with a check that fails without it."""
import logging
import os
import subprocess
import sys

import pytest
import torch

import fastreid_val.compat as compat

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="the shim applies only without CUDA")


def _python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_s1_s2_fastreid_imports_only_with_pre_import_shims():
    bare = _python("import fastreid.data")
    assert bare.returncode != 0 and ("_six" in bare.stderr or "Mapping" in bare.stderr)
    shimmed = _python("import fastreid_val.compat as c; c.apply_pre_import_shims(); "
                      "import fastreid.data, fastreid.engine, fastreid.evaluation")
    assert shimmed.returncode == 0, shimmed.stderr[-2000:]


@no_cuda
def test_s3_train_loader_runs_without_cuda():
    from fastreid.data import build
    from fastreid.data.data_utils import DataLoaderX

    with pytest.raises((RuntimeError, AssertionError, AttributeError)):
        DataLoaderX(0, dataset=list(range(4)))  # upstream: needs a CUDA stream
    assert build.DataLoaderX is compat.CPUDataLoader
    loader = build.build_reid_test_loader(test_set=[{"x": torch.ones(1)}] * 3, test_batch_size=2, num_query=1,
                                          num_workers=0)[0]
    assert [b["x"].shape[0] for b in loader] == [2, 1]


def test_s4_missing_rank_cylib_warns_once_and_never_exits(monkeypatch, caplog):
    from fastreid.evaluation.reid_evaluation import ReidEvaluator

    from fastreid_val.compat import evaluation

    monkeypatch.setattr(evaluation, "rank_cylib_available", lambda: False)
    monkeypatch.setattr(evaluation, "_rank_warning_done", False)
    with caplog.at_level(logging.WARNING):
        ReidEvaluator(None, 1)
        ReidEvaluator(None, 1)
    assert sum("rank evaluator is not built" in r.message for r in caplog.records) == 1


def test_s4_rank_cylib_is_built_at_install():
    assert compat.rank_cylib_available(), "run `python tools/build_rank_cylib.py`"


def test_a_failed_rank_cylib_build_says_what_happens_next(monkeypatch, capsys):
    import subprocess

    from fastreid_val.evaluation import rank_cylib

    monkeypatch.setattr(compat, "rank_cylib_available", lambda: False)
    monkeypatch.setattr(rank_cylib.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 1, stdout="error: command 'gcc' failed: No such file or directory"))
    assert rank_cylib.build_rank_cylib() == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert "command 'gcc' failed" in err[0]
    assert err[-1] == rank_cylib.BUILD_FAILED
    assert "installation goes on" in err[-1] and "python tools/build_rank_cylib.py" in err[-1]


@no_cuda
def test_s5_rerank_on_cpu():
    from fastreid.utils import compute_dist

    q, g = torch.randn(5, 8), torch.randn(12, 8)
    with pytest.raises(Exception):
        compute_dist.build_dist(q, g, "jaccard", k1=4, k2=2)  # upstream: features.cuda()
    d = compat.build_dist(q, g, "jaccard", k1=4, k2=2)
    ref = compute_dist.compute_jaccard_distance(torch.cat((q, g)), k1=4, k2=2, search_option=3)[:5, 5:]
    assert d.shape == (5, 12) and d.dtype == ref.dtype and abs(d - ref).max() < 1e-5


def test_s5_gpu_machine_reaches_no_faiss_gpu_call(monkeypatch):
    """What a CUDA machine with faiss-GPU runs: CUDA and faiss GPUs reported, every faiss-GPU entry
    point (and upstream's jaccard) made to fail: re-ranking still runs, through our implementation."""
    import faiss
    from fastreid.utils import compute_dist, faiss_utils

    def unreachable(*args, **kwargs):
        raise AssertionError("a faiss-GPU-only call was reached")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1, raising=False)
    for name in ("StandardGpuResources", "GpuIndexFlatL2", "GpuIndexFlatConfig", "bruteForceKnn",
                 "cast_integer_to_long_ptr", "cast_integer_to_float_ptr", "IndexFlatL2"):
        monkeypatch.setattr(faiss, name, unreachable, raising=False)
    for name in ("search_raw_array_pytorch", "search_index_pytorch", "index_init_gpu", "index_init_cpu"):
        monkeypatch.setattr(compute_dist, name, unreachable)
        monkeypatch.setattr(faiss_utils, name, unreachable)
    monkeypatch.setattr(compute_dist, "compute_jaccard_distance", unreachable)
    q, g = torch.randn(5, 8), torch.randn(12, 8)
    d = compat.build_dist(q, g, "jaccard", k1=4, k2=2)
    assert d.shape == (5, 12) and (d >= 0).all() and (d <= 1).all()


@no_cuda
def test_s6_ddp_without_device_ids_on_cpu(tmp_path):
    import importlib

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    import fastreid.engine.defaults as defaults
    from fastreid.utils import comm

    launch = importlib.import_module("fastreid.engine.launch")
    assert launch._distributed_worker is compat._distributed_worker_cpu
    assert defaults.DistributedDataParallel is compat._ddp
    seen = {}

    def main_func():
        seen["backend"], seen["world"] = dist.get_backend(), comm.get_world_size()
        model = torch.nn.Linear(2, 2)
        with pytest.raises(ValueError):  # what upstream does on a CPU machine: CUDA device_ids for a CPU model
            DistributedDataParallel(model, device_ids=[0])
        ddp = compat._ddp(model, device_ids=[0], broadcast_buffers=False)
        ddp(torch.ones(1, 2)).sum().backward()
        seen["grad"] = model.weight.grad.clone()

    try:
        compat._distributed_worker_cpu(0, main_func, 1, 1, 0, f"file://{tmp_path}/rendezvous", ())
    finally:
        dist.destroy_process_group()
    assert seen["backend"] == "gloo" and seen["world"] == 1
    assert torch.equal(seen["grad"], torch.ones(2, 2))  # one process: DDP's average is the gradient itself


def test_s16_ddp_gets_fastreids_buffer_setting_without_the_deprecated_argument(tmp_path, monkeypatch):
    import warnings

    import torch.distributed as dist

    import fastreid.engine.defaults as defaults
    from fastreid.utils import comm

    monkeypatch.setattr(comm, "_LOCAL_PROCESS_GROUP", None)  # a fresh process's; restored after the test
    seen = {}

    def main_func():
        model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # what DefaultTrainer.__init__ calls (fastreid/engine/defaults.py:210)
            ddp = defaults.DistributedDataParallel(model, device_ids=[0], broadcast_buffers=False)
        seen["warnings"] = [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]
        seen["forward_sync_buffers"] = ddp.forward_sync_buffers
        ddp(torch.ones(3, 2)).sum().backward()

    try:
        compat._distributed_worker_cpu(0, main_func, 1, 1, 0, f"file://{tmp_path}/rendezvous", ())
    finally:
        dist.destroy_process_group()
    assert seen["warnings"] == []  # torch 2.13+: "`broadcast_buffers` is deprecated. Use `forward_sync_buffers` ..."
    assert seen["forward_sync_buffers"] is False  # BatchNorm statistics stay per process, as FastReID asks


def test_s7_amp_is_turned_off_on_cpu():
    from fastreid_val.engine import build_config

    cfg = build_config("", ["SOLVER.AMP.ENABLED", "True", "MODEL.DEVICE", "cpu"])
    assert cfg.SOLVER.AMP.ENABLED is False


def test_s8_output_dir_is_created(tmp_path):
    from fastreid.engine import DefaultTrainer
    from fastreid_val.engine import ViewpointTrainer, build_config

    cfg = build_config("", ["OUTPUT_DIR", str(tmp_path / "new" / "dir")])
    with pytest.raises(FileNotFoundError):  # upstream, untouched by the plugin
        DefaultTrainer.auto_scale_hyperparams(cfg.clone(), 7)
    ViewpointTrainer.auto_scale_hyperparams(cfg, 7)
    assert os.path.exists(tmp_path / "new" / "dir" / "config.yaml")


def test_s9_test_loader_honours_num_workers(monkeypatch):
    from fastreid.data import build
    from fastreid.data.datasets import DATASET_REGISTRY
    from fastreid_val.engine import ViewpointTrainer, build_config

    class Tiny:
        def __init__(self, root, **kw):
            self.query, self.gallery = [("a.jpg", 1, 0)], [("b.jpg", 1, 1)]

        def show_test(self):
            pass

    monkeypatch.setattr(DATASET_REGISTRY, "get", lambda name: Tiny)
    cfg = build_config("", ["DATALOADER.NUM_WORKERS", "0"])
    loader, nq = build.build_reid_test_loader(cfg, dataset_name="Tiny")
    assert loader.num_workers == 4 and nq == 1  # upstream, untouched by the plugin
    monkeypatch.setattr("fastreid_val.data.build.load_dataset", lambda cfg, name, **kw: _TinyViewpoints())
    loader, nq = ViewpointTrainer.build_test_loader(cfg, "Tiny")
    assert loader.num_workers == 0 and nq == 1


class _TinyViewpoints:
    query, gallery = [("a.jpg", 1, 0, 0)], [("b.jpg", 1, 1, 1)]

    def show_test(self):
        pass

    def identity_groups(self):
        return None


def _writes_per_iteration(writer_cls, iters_per_epoch=5, epochs=2, period=5):
    """How often ``writer_cls`` (a PeriodicWriter) writes each iteration over FastReID's loop order."""
    from fastreid.utils.events import EventWriter

    written = []

    class Recorder(EventWriter):
        def write(self):
            written.append(trainer.storage.iter)

    class Trainer:
        iter, max_iter = 0, iters_per_epoch * epochs
        storage = type("Storage", (), {"iter": 0})()

    trainer = Trainer()
    hook = writer_cls([Recorder()], period)
    hook.trainer = trainer
    for _ in range(epochs):  # fastreid/engine/train_loop.py:141-148
        for _ in range(iters_per_epoch):
            trainer.storage.iter = trainer.iter
            hook.after_step()
            trainer.iter += 1
        hook.after_epoch()
    return written


def test_s10_each_iteration_is_written_once():
    from fastreid.engine import hooks
    from fastreid_val.engine.writers import PeriodicWriter

    assert _writes_per_iteration(hooks.PeriodicWriter) == [4, 4, 9, 9]  # upstream: the epoch's end again
    assert _writes_per_iteration(PeriodicWriter) == [4, 9]
    assert _writes_per_iteration(PeriodicWriter, iters_per_epoch=4, period=3) == [2, 3, 5, 7]


def test_s10_upstream_printer_fails_on_a_second_write_of_one_iteration():
    from fastreid.utils.events import CommonMetricPrinter, EventStorage

    printer = CommonMetricPrinter(max_iter=3)
    with EventStorage(0) as storage:
        storage.epoch = 0  # set by the trainer
        storage.put_scalar("loss", 1.0)
        printer.write()
        with pytest.raises(ZeroDivisionError):  # what PeriodicWriter above no longer does
            printer.write()


def _steps(optimizer, model):
    before = model.weight.detach().clone()
    for _ in range(2):
        optimizer.zero_grad()  # set_to_none on torch >= 2
        model(torch.ones(4, 3)).sum().backward()
        optimizer.step()
    return not torch.equal(model.weight.detach(), before)


def test_s11_optimizer_updates_parameters():
    from fastreid.engine import DefaultTrainer
    from fastreid_val.engine import ViewpointTrainer, build_config

    cfg = build_config("", ["MODEL.DEVICE", "cpu", "SOLVER.OPT", "SGD", "SOLVER.BASE_LR", "0.1"])
    model = torch.nn.Linear(3, 2)
    optimizer, _ = ViewpointTrainer.build_optimizer(cfg, model)
    assert _steps(optimizer, model)
    # upstream's contiguous parameters never move under set_to_none; FastReID itself is left as it is
    model2 = torch.nn.Linear(3, 2)
    opt2, _ = DefaultTrainer.build_optimizer(cfg, model2)
    assert not _steps(opt2, model2)


def _next_within(it, seconds=20):
    """next(it) in a thread: ("item", x), ("raised", e), or ("hung", None) after ``seconds``."""
    import threading

    box = []

    def take():
        try:
            box.append(("item", next(it)))
        except BaseException as e:  # noqa: B902 - the test inspects whatever comes out
            box.append(("raised", e))

    t = threading.Thread(target=take, daemon=True)
    t.start()
    t.join(seconds)
    return box[0] if box else ("hung", None)


@pytest.mark.parametrize("shim", [True, False])
def test_s12_background_loader_thread_passes_errors_on(monkeypatch, shim):
    from fastreid.data import data_utils

    from fastreid_val import compat
    from fastreid_val.errors import UnreadableImageError

    monkeypatch.setattr(torch.cuda, "set_device", lambda *a: None)  # the thread's first call, CUDA only
    if not shim:
        monkeypatch.setattr(data_utils.BackgroundGenerator, "run", data_utils.BackgroundGenerator.run.__wrapped__)
        monkeypatch.setattr(data_utils.BackgroundGenerator, "next", data_utils.BackgroundGenerator.next.__wrapped__)

    def batches():
        yield 1
        raise UnreadableImageError("cannot read image x.jpg")

    it = data_utils.BackgroundGenerator(batches(), local_rank=0)
    assert _next_within(it) == ("item", 1)
    kind, err = _next_within(it, seconds=20 if shim else 2)
    if shim:
        assert kind == "raised" and isinstance(err, UnreadableImageError), (kind, err)
    else:  # upstream: the consumer waits forever
        assert kind == "hung"
    assert compat._APPLIED


def test_s13_restart_train_iterator_applies_a_sampler_change():
    """FastReID's train loop keeps the iterator it took at construction; after the sampler changes
    (a resume's skip), only a restarted iterator yields from the new position."""
    from fastreid.engine.train_loop import SimpleTrainer

    from fastreid_val.compat.engine import restart_train_iterator

    data = list(range(6))
    start = {"at": 0}

    class Loader:
        def __iter__(self):
            return iter(data[start["at"]:])

    class Owner:
        data_loader = Loader()
        _trainer = SimpleTrainer(torch.nn.Linear(1, 1), Loader(), torch.optim.SGD([torch.zeros(1)], lr=0.1), None)

    owner = Owner()
    start["at"] = 4                                        # what a resume's skip does to the sampler
    assert next(owner._trainer._data_loader_iter) == 0     # upstream: the old iterator ignores it
    restart_train_iterator(owner)
    assert next(owner._trainer._data_loader_iter) == 4
