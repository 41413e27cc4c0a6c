"""RUN.FLUSH_DENORMAL (fastreid_val/engine/denormals.py): on by default, set on every CPU thread of a
process that sets it first, measured to reach only the calling thread when torch's threads already run,
and said so by the launcher. The speed it buys is benchmarks/train_step.py --case demo --trained's."""
import json
import logging
import os
import subprocess
import sys

import pytest

from fastreid_val.engine import build_config
from fastreid_val.engine.launcher import log_denormals

from .test_docs import ROOT

# Each case in a fresh process of 2 threads, as a training starts: (threads as asked, threads), and the
# denormal results a large product kept (torch splits it across both threads).
CHILD = """
import importlib.util, json, sys, torch
torch.set_num_threads(2)
spec = importlib.util.spec_from_file_location("denormals", "fastreid_val/engine/denormals.py")
denormals = importlib.util.module_from_spec(spec)
spec.loader.exec_module(denormals)  # the module alone (it needs torch only): a child that starts quickly
flush_denormals = denormals.flush_denormals
if sys.argv[1] == "late":
    torch.ones(1 << 20).mul_(2)  # torch's worker thread starts here, before the mode is set
got = flush_denormals(sys.argv[1] != "off")
kept = int((torch.full((1 << 20,), 1e-30) * 1e-10).count_nonzero())
print(json.dumps({"threads": got, "kept": kept}))
"""
CASES = ("on", "off", "late")


@pytest.fixture(scope="module")
def children():
    """{case: the child's answer}, the three processes run side by side."""
    procs = {case: subprocess.Popen([sys.executable, "-c", CHILD, case], cwd=ROOT, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, env=dict(os.environ, OMP_NUM_THREADS="2"))
             for case in CASES}
    out = {}
    for case, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr[-3000:]
        out[case] = json.loads(stdout.strip().splitlines()[-1])
    return out


def test_set_first_every_thread_flushes(children):
    assert children["on"] == {"threads": [2, 2], "kept": 0}


def test_off_every_thread_keeps_denormals(children):
    assert children["off"] == {"threads": [2, 2], "kept": 1 << 20}


def test_set_after_torchs_threads_started_it_reaches_the_calling_thread_only(children):
    # the probe tells: half of the product (the worker thread's chunk) is still denormal
    assert children["late"] == {"threads": [1, 2], "kept": 1 << 19}


def test_on_by_default():
    assert build_config("configs/SynthVeRi/val_mnv2.yml").RUN.FLUSH_DENORMAL is True
    assert build_config("configs/VeRi/val_r50.yml").RUN.FLUSH_DENORMAL is True


def test_the_launcher_says_what_it_reached(caplog):
    with caplog.at_level(logging.INFO, logger="fastreid_val"):
        log_denormals(True, (2, 2))
        log_denormals(False, (2, 2))
        log_denormals(True, None)
    assert [r.levelno for r in caplog.records] == [logging.INFO] * 3
    assert "RUN.FLUSH_DENORMAL True: all 2 CPU threads flush denormal floats to zero" in caplog.records[0].message
    assert "RUN.FLUSH_DENORMAL False: all 2 CPU threads compute on denormal floats" in caplog.records[1].message
    assert "no flush-to-zero mode" in caplog.records[2].message
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="fastreid_val"):
        log_denormals(True, (1, 2))
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.message.startswith("RUN.FLUSH_DENORMAL True reached 1 of torch's 2 CPU threads")
    assert "a process of its own (tools/train_net.py)" in record.message
