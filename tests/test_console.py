"""The console of the main job and of tools/compare.py: the progress file a training writes, the bar or
plain lines it becomes, the child's stderr passed on once, and upstream's noise filtered."""
import io
import json
import logging
import subprocess
import sys
import textwrap

import pytest

from fastreid.utils.events import EventStorage
from fastreid_val.engine.writers import ProgressWriter
from fastreid_val.experiments.progress import TrainingProgress, format_progress, run_training, setup_console


def _record(i, n=900, **kw):
    return {"iteration": i, "max_iter": n, "epoch": 0, "losses": {"total_loss": 5.0 - i / n},
            "seconds_per_iter": 0.25, "eta_seconds": 0.25 * (n - i), **kw}


@pytest.fixture
def console():
    stream = io.StringIO()
    setup_console(stream=stream)
    yield stream
    logger = logging.getLogger("fastreid_val")
    for h in list(logger.handlers):
        if getattr(h, "stream", None) is stream:
            logger.removeHandler(h)


def test_progress_writer_appends_one_record_per_write(tmp_path):
    path = tmp_path / "progress.jsonl"
    writer = ProgressWriter(str(path), max_iter=10)
    with EventStorage(0) as storage:
        storage.epoch = 0
        for _ in range(3):
            storage.put_scalars(total_loss=2.0, loss_cls=1.5, time=0.5)
            writer.write()
            storage.step()
        storage.iter = 10  # after training: nothing more
        writer.write()
    writer.close()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["iteration"] for r in records] == [1, 2, 3]
    assert records[-1]["max_iter"] == 10 and records[-1]["losses"] == {"total_loss": 2.0, "loss_cls": 1.5}
    assert records[-1]["seconds_per_iter"] == 0.5 and records[-1]["eta_seconds"] == pytest.approx(0.5 * 7)


def test_format_progress():
    assert format_progress(_record(180)) == "iteration 180/900  total_loss 4.8  0.25 s/it  ETA 0:03:00"
    assert format_progress(_record(20, seconds_per_iter=None, eta_seconds=None)).endswith("-- s/it  ETA ?")


def test_plain_lines_every_fifth_when_not_a_terminal(console):
    progress = TrainingProgress("VAL", interactive=False)
    for i in range(20, 901, 20):  # RUN.LOG_PERIOD 20 over 900 iterations: 45 records
        progress.update(_record(i))
    lines = console.getvalue().splitlines()
    assert [line.split("/")[0] for line in lines[:-1]] == [f"  VAL: iteration {i}" for i in (20, 180, 360, 540, 720, 900)]
    assert lines[-1] == "  VAL: trained; evaluating"
    assert len(lines) == len(set(lines))


def test_a_bar_on_a_terminal(console):
    bar_stream = io.StringIO()
    progress = TrainingProgress("Softmax", interactive=True, stream=bar_stream)
    for i in (20, 40, 900):
        progress.update(_record(i))
    drawn = bar_stream.getvalue()
    assert "\r" in drawn and "iteration 40/900" in drawn and "100%" in drawn
    assert console.getvalue() == "  Softmax: trained; evaluating\n"


CHILD = textwrap.dedent("""
    import json, sys, time
    path = sys.argv[1]
    print("FastReID's console: not shown")
    for i in (5, 10):
        with open(path, "a") as f:
            f.write(json.dumps({"iteration": i, "max_iter": 10, "losses": {"loss": 1.0},
                                "seconds_per_iter": 0.1, "eta_seconds": 0.1 * (10 - i)}) + "\\n")
        time.sleep(0.6)
    print("a warning of ours", file=sys.stderr)
    sys.exit(int(sys.argv[2]))
""")


@pytest.mark.parametrize("status", [0, 2])
def test_run_training_shows_progress_and_stderr_once(tmp_path, console, status):
    path = tmp_path / "progress.jsonl"
    path.write_text(json.dumps(_record(900)) + "\n")  # an earlier run's record: not shown
    code, tail = run_training([sys.executable, "-c", CHILD, str(path), str(status)], str(path), "run")
    out = console.getvalue()
    assert code == status and tail == ["a warning of ours"]
    assert out.count("a warning of ours") == 1 and "not shown" not in out and "900" not in out
    assert "  run: iteration 5/10" in out and "  run: iteration 10/10" in out
    assert ("done in" in out) == (status == 0)


def _stderr_of(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300).stderr


def test_s14_s15_upstream_noise_is_filtered_and_our_warnings_still_show():
    read = textwrap.dedent("""
        import logging, warnings
        import fastreid_val
        from PIL import Image
        from fastreid.data.transforms.functional import to_tensor
        {undo}
        to_tensor(Image.new("RGB", (4, 4)))
        logging.getLogger("torch.utils.cpp_extension").warning("No CUDA runtime is found, using CUDA_HOME='/x'")
        warnings.warn("a warning of ours")
    """)
    err = _stderr_of(read.format(undo=""))
    assert "TypedStorage" not in err and "No CUDA runtime" not in err
    assert "a warning of ours" in err
    undo = ("warnings.filters[:] = [f for f in warnings.filters if 'TypedStorage' not in str(f[1])]\n"
            "logging.getLogger('torch.utils.cpp_extension').filters.clear()")
    err = _stderr_of(read.format(undo=undo))
    assert "TypedStorage is deprecated" in err and "No CUDA runtime" in err


def test_train_net_prints_fastreids_console_without_duplicates_or_upstream_noise(datasets_root, tmp_path):
    """tools/train_net.py stays FastReID's (environment, config, progress, results), each line once."""
    import os

    from .conftest import TINY_OPTS

    root = os.path.join(os.path.dirname(__file__), "..")
    # 24 identities x 8 images / 32 = 6 iterations an epoch; a write every 3 ends every epoch on one
    cmd = [sys.executable, os.path.join(root, "tools/train_net.py"), "--config-file",
           os.path.join(root, "configs/SynthVeRi/val_mnv2.yml"), *TINY_OPTS, "INPUT.SIZE_TRAIN", "[32, 32]",
           "INPUT.SIZE_TEST", "[32, 32]", "SOLVER.IMS_PER_BATCH", "32", "DATALOADER.NUM_WORKERS", "1",
           "SOLVER.WARMUP_ITERS", "2", "SOLVER.MAX_EPOCH", "2", "RUN.LOG_PERIOD", "3", "TEST.RERANK.ENABLED", "False",
           "OUTPUT_DIR", str(tmp_path / "run")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    progress = [line.split("]:", 1)[1] for line in out.splitlines() if "epoch/iter:" in line]
    assert len(progress) == 4 and len(set(progress)) == 4, progress  # iterations 3, 6, 9, 12, each once
    assert "Environment info" in out and "Running with full config" in out and "Evaluation results" in out
    assert "TypedStorage" not in proc.stdout + proc.stderr and "No CUDA runtime" not in proc.stdout + proc.stderr
