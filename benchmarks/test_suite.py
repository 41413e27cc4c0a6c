#!/usr/bin/env python
"""What `make test` costs: the number of tests, the wall time, the peak memory of the largest process and
of all the run's processes together, and the peak of the temporary files, measured on a run of the suite
as `make test` runs it (``python -m pytest -q -n 2 --dist worksteal tests``: two worker processes), with
the machine and its load named.

    python benchmarks/test_suite.py                   # measure and print
    python benchmarks/test_suite.py --write           # and write the figures into docs/GETTING_STARTED.md
    python benchmarks/test_suite.py --doc /tmp/GS.md --write tests/test_docs.py   # a subset, into a copy
    python benchmarks/test_suite.py -- tests --durations=20   # and pytest's slowest 20 (not in the figures)
    python benchmarks/test_suite.py --workers 0               # every test in one process (TEST_WORKERS=0)

The figures go between the ``<!-- make-test -->`` markers of the document, replacing what was there;
nothing is written when a test fails. The temporary files are pytest's own folder (``PYTEST_DEBUG_TEMPROOT``
points it at a fresh folder, so that only this run's files are counted) and the memory of all the processes
the run starts is the sum of their resident sets, both sampled every second.
"""
import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from fastreid_val.engine.environment import cpu_model

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
DOC = os.path.join(ROOT, "docs", "GETTING_STARTED.md")
BLOCK = re.compile(r"<!-- make-test -->(.*?)<!-- /make-test -->", re.S)
OUTCOMES = ("passed", "failed", "skipped", "xfailed", "xpassed", "errors", "error")
WORKERS = 2  # the Makefile's TEST_WORKERS


def command(workers, pytest_args):
    """What runs the suite after ``python``: `make test`'s command for ``workers`` (its TEST_WORKERS)."""
    return ["-m", "pytest", "-q", "-n", str(workers), "--dist", "worksteal", *pytest_args]


def tree_rss(pid):
    """The resident memory, in bytes, of process ``pid`` and every process below it (0 once it has gone)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):  # gone while listing
                pass
    tree, frontier = set(), [pid]
    while frontier:
        p = frontier.pop()
        tree.add(p)
        frontier.extend(child for child, parent in parents.items() if parent == p and child not in tree)
    total = 0
    for p in tree:
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            pass
    return total


def folder_size(path):
    total = 0
    for base, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(base, name)).st_size
            except OSError:  # removed while walking
                pass
    return total


def count_tests(summary):
    """The tests run, from pytest's last line (``620 passed, 4 skipped in 1085.31s (0:18:05)``)."""
    return sum(int(n) for n, outcome in re.findall(r"(\d+) (\w+)", summary) if outcome in OUTCOMES)


def measure(pytest_args, workers=WORKERS):
    """Run the suite; returns a dict of figures (``ok`` False when a test failed)."""
    temp_root = tempfile.mkdtemp(prefix="suite-temp-")
    env = dict(os.environ, PYTEST_DEBUG_TEMPROOT=temp_root)
    peak, memory, done = [0], [0], threading.Event()
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *command(workers, pytest_args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def sample():
        while not done.wait(1.0):
            peak[0] = max(peak[0], folder_size(temp_root))
            memory[0] = max(memory[0], tree_rss(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    peak[0] = max(peak[0], folder_size(temp_root))
    shutil.rmtree(temp_root, ignore_errors=True)
    lines = [line for line in stdout.splitlines() if line.strip()]
    summary = lines[-1] if lines else ""
    return {"ok": proc.returncode == 0, "tests": count_tests(summary), "summary": summary, "wall_s": wall,
            "workers": workers, "max_rss_gb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1e9,
            "all_rss_gb": memory[0] / 1e9, "temp_gb": peak[0] / 1e9, "cpu": cpu_model(), "cores": os.cpu_count(),
            "load": load, "output": stdout}


def sentence(m):
    """The figures as the document quotes them."""
    minutes = m["wall_s"] / 60
    took = f"{minutes:.0f} minutes" if minutes >= 2 else f"{m['wall_s']:.0f} s"
    workers = f"{m['workers']} worker processes" if m["workers"] > 1 else "one process"
    return (f"`make test` took **{took}** for **{m['tests']} tests** in {workers} on a {m['cores']}-core "
            f"`{m['cpu']}` (load average {m['load']:.1f} when it started; `python benchmarks/test_suite.py`), "
            f"with at most **{m['max_rss_gb']:.1f} GB** resident in one process and **{m['all_rss_gb']:.1f} GB** "
            f"in all its processes together, and up to **{m['temp_gb']:.1f} GB** of temporary files under "
            f"`/tmp/pytest-of-$USER/`")


def quoted_count(text):
    """The number of tests the document quotes between its markers."""
    block = BLOCK.search(text)
    found = re.search(r"\*\*(\d[\d,]*) tests\*\*", block.group(1)) if block else None
    if not found:
        raise ValueError("no <!-- make-test --> block quoting '**N tests**'")
    return int(found.group(1).replace(",", ""))


def rewrite(text, new):
    """``text`` with the marked block's content replaced by ``new`` (exactly one block)."""
    if len(BLOCK.findall(text)) != 1:
        raise ValueError("expected exactly one <!-- make-test --> ... <!-- /make-test --> block")
    return BLOCK.sub(lambda _: f"<!-- make-test -->{new}<!-- /make-test -->", text)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--write", action="store_true", help="write the figures into --doc")
    p.add_argument("--doc", default=DOC, help="the document whose <!-- make-test --> block is rewritten")
    p.add_argument("--workers", type=int, default=WORKERS,
                   help=f"pytest-xdist's worker processes, as the Makefile's TEST_WORKERS (default {WORKERS}; 0: one process)")
    p.add_argument("pytest_args", nargs="*", default=["tests"], help="what pytest runs (default: tests, as make test)")
    a = p.parse_args(argv)
    m = measure(a.pytest_args, a.workers)
    slowest = m["output"].find("slowest ")  # pytest's --durations table, when asked for
    if 0 <= slowest < len(m["output"]) - 3000:
        print(m["output"][slowest:].split("\n\n")[0])
    print(m["output"][-3000:])
    print(sentence(m))
    if not m["ok"]:
        print("a test failed: nothing written", file=sys.stderr)
        return 1
    if a.write:
        with open(a.doc) as f:
            text = f.read()
        with open(a.doc, "w") as f:
            f.write(rewrite(text, sentence(m)))
        print(f"written into {a.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
