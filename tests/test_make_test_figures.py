"""The figures quoted for `make test` (docs/GETTING_STARTED.md, between ``<!-- make-test -->`` markers) are
written by benchmarks/test_suite.py, and the number of tests quoted is the number the suite has."""
import importlib.util
import os
import re
import subprocess
import sys
import time

import pytest

from .test_docs import ROOT

GUIDE = os.path.join(ROOT, "docs", "GETTING_STARTED.md")


def _script():
    spec = importlib.util.spec_from_file_location("test_suite_benchmark", os.path.join(ROOT, "benchmarks", "test_suite.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_quoted_number_of_tests_is_the_suites():
    collected = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "tests"], cwd=ROOT,
                               capture_output=True, text=True)
    found = re.search(r"^(\d+) tests? collected", collected.stdout, re.M)
    assert found, collected.stdout[-2000:] + collected.stderr[-2000:]
    quoted = _script().quoted_count(open(GUIDE).read())
    assert quoted == int(found.group(1)), (f"docs/GETTING_STARTED.md quotes {quoted} tests, the suite has "
                                           f"{found.group(1)}: run python benchmarks/test_suite.py --write")


def test_the_script_writes_its_figures_into_its_block_only():
    script = _script()
    assert script.count_tests("620 passed, 3 skipped, 1 xfailed, 2 deselected, 5 warnings in 1085.31s (0:18:05)") == 624
    m = {"wall_s": 1085.3, "tests": 624, "workers": 2, "cores": 2, "cpu": "Some CPU @ 2.80GHz", "load": 0.4,
         "max_rss_gb": 2.14, "all_rss_gb": 3.93, "temp_gb": 3.46}
    text = "before <!-- make-test -->`make test` took **old**<!-- /make-test -->: after\n"
    written = script.rewrite(text, script.sentence(m))
    assert written.startswith("before <!-- make-test -->`make test` took **18 minutes** for **624 tests** in 2 "
                              "worker processes on a 2-core `Some CPU @ 2.80GHz` (load average 0.4 when it started; ")
    assert ("at most **2.1 GB** resident in one process and **3.9 GB** in all its processes together, and up to "
            "**3.5 GB** of temporary files") in written
    assert "for **624 tests** in one process on" in script.sentence(dict(m, workers=0))
    assert written.endswith("<!-- /make-test -->: after\n") and script.quoted_count(written) == 624
    with pytest.raises(ValueError):
        script.rewrite(text + text, "x")
    with pytest.raises(ValueError):
        script.quoted_count("no block here")


def test_the_memory_of_a_process_tree_counts_its_children():
    script = _script()
    alone = script.tree_rss(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "import sys; b = b'x' * (300 << 20); sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    try:
        for _ in range(100):  # until the child holds its 300 MB
            if script.tree_rss(child.pid) > 250 << 20:
                break
            time.sleep(0.05)
        assert script.tree_rss(os.getpid()) - alone > 250 << 20
    finally:
        child.communicate(b"")
    assert script.tree_rss(child.pid) == 0  # gone
