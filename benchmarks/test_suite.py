#!/usr/bin/env python
"""What `make test` costs: the number of tests, the wall time, the largest process's peak memory and the
peak of the temporary files, measured on a run of the suite as `make test` runs it
(``python -m pytest -q tests``), with the machine and its load named.

    python benchmarks/test_suite.py                   # measure and print
    python benchmarks/test_suite.py --write           # and write the figures into docs/GETTING_STARTED.md
    python benchmarks/test_suite.py --doc /tmp/GS.md --write tests/test_docs.py   # a subset, into a copy
    python benchmarks/test_suite.py -- tests --durations=20   # and pytest's slowest 20 (not in the figures)

The figures go between the ``<!-- make-test -->`` markers of the document, replacing what was there;
nothing is written when a test fails. The temporary files are pytest's own folder (``PYTEST_DEBUG_TEMPROOT``
points it at a fresh folder, so that only this run's files are counted), sampled every second.
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


def measure(pytest_args):
    """Run the suite; returns a dict of figures (``ok`` False when a test failed)."""
    temp_root = tempfile.mkdtemp(prefix="suite-temp-")
    env = dict(os.environ, PYTEST_DEBUG_TEMPROOT=temp_root)
    peak, done = [0], threading.Event()

    def sample():
        while not done.wait(1.0):
            peak[0] = max(peak[0], folder_size(temp_root))

    load = os.getloadavg()[0]
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", *pytest_args], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    peak[0] = max(peak[0], folder_size(temp_root))
    shutil.rmtree(temp_root, ignore_errors=True)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    summary = lines[-1] if lines else ""
    return {"ok": proc.returncode == 0, "tests": count_tests(summary), "summary": summary, "wall_s": wall,
            "max_rss_gb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1e9,
            "temp_gb": peak[0] / 1e9, "cpu": cpu_model(), "cores": os.cpu_count(), "load": load,
            "output": proc.stdout}


def sentence(m):
    """The figures as the document quotes them."""
    minutes = m["wall_s"] / 60
    took = f"{minutes:.0f} minutes" if minutes >= 2 else f"{m['wall_s']:.0f} s"
    return (f"`make test` took **{took}** for **{m['tests']} tests** on a {m['cores']}-core `{m['cpu']}` "
            f"(load average {m['load']:.1f} when it started; `python benchmarks/test_suite.py`), with at most "
            f"**{m['max_rss_gb']:.1f} GB** resident in one process and up to **{m['temp_gb']:.1f} GB** of "
            f"temporary files under `/tmp/pytest-of-$USER/`")


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
    p.add_argument("pytest_args", nargs="*", default=["tests"], help="what pytest runs (default: tests, as make test)")
    a = p.parse_args(argv)
    m = measure(a.pytest_args)
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
