#!/usr/bin/env python
"""Wall time of the main job (`make demo` without installation): generation, floors, both trainings,
evaluation with re-ranking, on a fresh dataset folder."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

from fastreid_val.experiments.timing import machine


def main():
    root = tempfile.mkdtemp(prefix="synthveri-bench-")
    env = dict(os.environ, FASTREID_DATASETS=root)
    start = time.perf_counter()
    subprocess.run([sys.executable, "tools/demo.py", "--out", os.path.join(root, "out")], env=env, check=True)
    wall = time.perf_counter() - start
    shutil.rmtree(root, ignore_errors=True)
    print(f"main job (generate SynthVeRi + floors + train Softmax and VAL + evaluate with re-ranking): {wall:.0f} s = {wall / 60:.1f} min "
          f"(goal <= 10 min); machine: {machine()}")


if __name__ == "__main__":
    main()
