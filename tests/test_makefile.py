"""The Makefile's installation logic, run by the real `make` in a temporary copy whose `.venv/bin/python`
is a stand-in that records its arguments: which FAISS build is installed and kept, and what a failed
build of FastReID's compiled evaluator does. Nothing is installed."""
import os
import re
import shutil
import subprocess

import pytest

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")

# Records its arguments; `tools/build_rank_cylib.py` fails when FAIL_CYLIB is set, as a compiler-less machine's does.
FAKE_PYTHON = """#!/bin/sh
echo "$*" >> "$(dirname "$0")/../../calls.log"
case "$*" in
  *build_rank_cylib.py*)
    if [ -n "$FAIL_CYLIB" ]; then echo "error: command 'gcc' failed"; echo "fastreid rank_cylib: build failed"; exit 1; fi;;
esac
exit 0
"""


@pytest.fixture
def tree(tmp_path):
    shutil.copy(os.path.join(ROOT, "Makefile"), tmp_path)
    (tmp_path / "tools").mkdir()
    for name in ("setup.py", "tools/build_rank_cylib.py"):
        (tmp_path / name).write_text("")
        os.utime(tmp_path / name, (1, 1))
    os.utime(tmp_path / "Makefile", (1, 1))
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return tmp_path


def make(tree, *args, fail_cylib=False):
    """Runs make; returns (exit status, output, the stand-in python's calls), and forgets the calls."""
    env = {k: v for k, v in os.environ.items() if k not in ("FAISS", "MAKEFLAGS", "MFLAGS")}
    if fail_cylib:
        env["FAIL_CYLIB"] = "1"
    ret = subprocess.run(["make", "--no-print-directory", *args], cwd=tree, env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    log = tree / "calls.log"
    calls = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return ret.returncode, ret.stdout, calls


def stamps(tree):
    return sorted(p.name for p in (tree / ".venv").glob(".installed-*"))


def test_a_plain_install_is_the_cpu_build_alone(tree):
    status, _, calls = make(tree, "install")
    assert status == 0
    assert "-m pip uninstall -q -y faiss-gpu-cu12" in calls
    assert '-m pip install -q -e .[cpu,test]' in calls
    assert stamps(tree) == [".installed-cpu"]


def test_the_gpu_build_sticks_until_faiss_is_given_again(tree):
    status, _, calls = make(tree, "install", "FAISS=gpu")
    assert status == 0
    assert "-m pip uninstall -q -y faiss-cpu" in calls and '-m pip install -q -e .[gpu,test]' in calls
    assert stamps(tree) == [".installed-gpu"]

    # A later plain target keeps the GPU build: nothing is installed again.
    for target, command in (("test", "-m pytest -q -n 2 --dist worksteal tests"), ("demo", "tools/demo.py")):
        status, _, calls = make(tree, target)
        assert status == 0 and calls == [command], (target, calls)
    assert stamps(tree) == [".installed-gpu"]

    # FAISS=cpu switches back, uninstalling the GPU build.
    status, _, calls = make(tree, "install", "FAISS=cpu")
    assert status == 0
    assert "-m pip uninstall -q -y faiss-gpu-cu12" in calls and '-m pip install -q -e .[cpu,test]' in calls
    assert stamps(tree) == [".installed-cpu"]


def test_a_failed_build_of_the_compiled_evaluator_does_not_stop_the_installation(tree):
    status, out, calls = make(tree, "test", fail_cylib=True)
    assert status == 0, out
    assert "build failed" in out and ".venv/install.log" in out
    assert calls[-1] == "-m pytest -q -n 2 --dist worksteal tests"
    assert stamps(tree) == [".installed-cpu"]


def test_an_unknown_faiss_build_is_refused(tree):
    status, out, calls = make(tree, "install", "FAISS=cuda")
    assert status != 0 and "FAISS must be cpu or gpu, got 'cuda'" in out
    assert calls == [] and stamps(tree) == []


def _bench_commands(tree, target="bench"):
    (tree / ".venv" / ".installed-cpu").touch()
    status, out, _ = make(tree, "-n", target)
    assert status == 0, out
    return [line.replace(".venv/bin/python ", "python ", 1) for line in out.splitlines()]


def test_make_bench_runs_each_benchmark_deploy_md_reports_once(tree):
    bench = _bench_commands(tree)
    assert len(bench) == len(set(bench)), "make bench repeats a run"
    deploy = open(os.path.join(ROOT, "docs", "DEPLOY.md")).read()
    reported = re.findall(r"`(python benchmarks/[^`]+)`", deploy)
    assert len(reported) >= 5
    million = _bench_commands(tree, "bench-million")  # the 1,000,000-row runs, too long for make bench
    assert million and not set(million) & set(bench)
    assert set(reported) <= set(bench) | set(million), sorted(set(reported) - set(bench) - set(million))


def test_make_test_runs_the_suite_in_workers_as_its_benchmark_does(tree):
    from .test_make_test_figures import _script

    script = _script()
    (tree / ".venv" / ".installed-cpu").touch()
    for given, workers in (((), script.WORKERS), (("TEST_WORKERS=0",), 0), (("TEST_WORKERS=3",), 3)):
        status, out, _ = make(tree, "-n", "test", *given)
        assert status == 0, out
        assert out.splitlines()[-1] == " ".join([".venv/bin/python", *script.command(workers, ["tests"])])
    assert script.command(2, ["tests"]) == ["-m", "pytest", "-q", "-n", "2", "--dist", "worksteal", "tests"]


def test_each_worker_gets_its_share_of_the_cores():
    from .conftest import share_cores

    assert share_cores({}, 2) is None  # one process: torch's default
    assert share_cores({"PYTEST_XDIST_WORKER_COUNT": "1"}, 2) is None
    assert share_cores({"PYTEST_XDIST_WORKER_COUNT": "2"}, 2) == 1
    assert share_cores({"PYTEST_XDIST_WORKER_COUNT": "2"}, 16) == 8
    assert share_cores({"PYTEST_XDIST_WORKER_COUNT": "3"}, 2) == 1  # at least one
    assert share_cores({"PYTEST_XDIST_WORKER_COUNT": "2", "OMP_NUM_THREADS": "3"}, 2) is None  # the user's
    import torch

    from . import conftest

    if conftest._THREADS is not None:  # this process is one of make test's workers: its share is set
        assert torch.get_num_threads() == conftest._THREADS == int(os.environ["OMP_NUM_THREADS"])
        assert conftest._THREADS == max(1, len(os.sched_getaffinity(0)) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
