"""Build FastReID's Cython rank evaluator at install time (never at run time; see compat S4)."""
import importlib.util
import logging
import os
import subprocess
import sys

logger = logging.getLogger(__name__)

__all__ = ["rank_cylib_dir", "build_rank_cylib", "BUILD_FAILED"]

# The last line of a failed build. `make install` shows it and goes on: evaluation does not use the compiled
# evaluator (ranks are counted in torch, evaluation/ranks.py); the tests and benchmarks that compare with
# FastReID's evaluator then run its much slower Python version (compat S4 warns once per process).
BUILD_FAILED = ("fastreid rank_cylib: build failed (it needs a C compiler and Python's headers); the installation "
                "goes on, and evaluation does not need it (ranks are counted in torch); the tests and benchmarks "
                "that compare with FastReID's evaluator do: install a compiler, then run "
                "`python tools/build_rank_cylib.py`")


def rank_cylib_dir():
    spec = importlib.util.find_spec("fastreid")
    if spec is None:
        raise ModuleNotFoundError("fastreid is not installed (pip install --no-deps fastreid==1.4.0)")
    return os.path.join(list(spec.submodule_search_locations)[0], "evaluation", "rank_cylib")


def build_rank_cylib() -> int:
    """Compile rank_cy/roc_cy in place; returns the exit status (0 when built or already there)."""
    from ..compat import rank_cylib_available

    if rank_cylib_available():
        print("fastreid rank_cylib: already built")
        return 0
    path = rank_cylib_dir()
    ret = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=path,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if ret.returncode != 0:
        print(ret.stdout[-4000:], file=sys.stderr)
        print(BUILD_FAILED, file=sys.stderr)
        return ret.returncode
    print(f"fastreid rank_cylib: built in {path}")
    return 0
