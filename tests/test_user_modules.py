"""A dataset of one's own, registered by ``--import``: GETTING_STARTED's "Your own dataset" run as written
(its module in a folder outside the repository, its two commands through tools/train_net.py), and the
one-line errors of a module that cannot be imported."""
import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from fastreid_val.engine.cli import cli
from fastreid_val.engine.user_modules import import_user_modules
from fastreid_val.errors import UserModuleError

from .test_docs import ROOT
from .trees import own_tree

GUIDE = os.path.join(ROOT, "docs", "GETTING_STARTED.md")
# A schedule of a few iterations on the tiny tree (8 training vehicles of 4 images: 2 iterations an epoch).
TINY = ["INPUT.SIZE_TRAIN", "[32, 32]", "INPUT.SIZE_TEST", "[32, 32]", "SOLVER.IMS_PER_BATCH", "16",
        "DATALOADER.NUM_WORKERS", "0", "SOLVER.MAX_EPOCH", "2", "SOLVER.WARMUP_ITERS", "1", "TEST.EVAL_PERIOD", "2",
        "SOLVER.CHECKPOINT_PERIOD", "2", "TEST.RERANK.ENABLED", "False", "RUN.SEED", "0"]


def the_example():
    """(module source, [command words, ...]) of the section "Your own dataset"."""
    text = open(GUIDE).read()
    section = text.split("### Your own dataset\n", 1)[1].split("\n### ", 1)[0]
    module = re.search(r"^```python\n(.*?)^```", section, re.S | re.M).group(1)
    shell = re.search(r"^```bash\n(.*?)^```", section, re.S | re.M).group(1).replace("\\\n", " ")
    commands = [shlex.split(line) for line in shell.splitlines() if line.startswith("python ")]
    return module, commands


def _as_run_here(words, module, out, tiny=()):
    """A documented command with this test's module file, output folder and schedule."""
    words = list(words)
    assert words[:2] == ["python", "tools/train_net.py"] and "--import" in words
    words[words.index("--import") + 1] = module
    for i, w in enumerate(words):
        if w.startswith("output/my_vehicles"):
            words[i] = w.replace("output/my_vehicles", out)
    return [sys.executable, *words[1:], *tiny, "OUTPUT_DIR", out]


def test_the_documented_dataset_trains_and_evaluates_with_the_stock_command(tmp_path):
    module_text, commands = the_example()
    assert len(commands) == 2 and "--eval-only" in commands[1]
    mine = tmp_path / "elsewhere"  # the user's folder: outside the repository
    mine.mkdir()
    assert not str(mine).startswith(ROOT)
    (mine / "my_vehicles.py").write_text(module_text)
    datasets = tmp_path / "datasets"
    own_tree(str(datasets / "my_vehicles"))
    env = dict(os.environ, FASTREID_DATASETS=str(datasets))
    out = str(tmp_path / "run")
    train = subprocess.run(_as_run_here(commands[0], str(mine / "my_vehicles.py"), out, TINY), cwd=ROOT, env=env,
                           capture_output=True, text=True)
    assert train.returncode == 0, train.stderr[-3000:]
    results = json.load(open(os.path.join(out, "results.json")))["metrics"]["MyVehicles"]
    # 4 test vehicles, each 1 query and 3 gallery images (one of unknown viewpoint): metrics, with the view ones
    assert 0 < results["mAP"] <= 100 and "xview-mAP" in results, results
    evaluate = subprocess.run(_as_run_here(commands[1], str(mine / "my_vehicles.py"), str(tmp_path / "eval"),
                                           ["INPUT.SIZE_TEST", "[32, 32]", "TEST.RERANK.ENABLED", "False",
                                            "MODEL.WEIGHTS", os.path.join(out, "model_final.pth")]),
                              cwd=ROOT, env=env, capture_output=True, text=True)
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    # FastReID's table: | Dataset | Rank-1 | Rank-5 | Rank-10 | mAP | ...: the trained model's metrics again
    row = re.search(r"^\| MyVehicles +\|(.*)$", evaluate.stdout, re.M)
    assert row, evaluate.stdout[-2000:]
    rank1, _, _, mean_ap = (float(c) for c in row.group(1).split("|")[:4])
    assert (rank1, mean_ap) == (round(results["Rank-1"], 2), round(results["mAP"], 2))


@pytest.mark.parametrize("name, source, expected", [
    ("no_such_module_here", None,
     r"^error: --import no_such_module_here: no module named 'no_such_module_here' on the Python path; .*$"),
    ("missing.py", None, r"^error: --import .*missing\.py: no such file .*$"),
    ("raises.py", "import os\n\nx = 1 / 0\n",
     r"^error: --import .*raises\.py: importing it raised ZeroDivisionError: division by zero \(.*raises\.py, line 3\)$"),
    ("needs.py", "import no_such_dependency_here\n",
     r"^error: --import .*needs\.py: importing it raised ModuleNotFoundError: No module named "
     r"'no_such_dependency_here' \(.*needs\.py, line 1\)$"),
    ("broken.py", "def f(:\n", r"^error: --import .*broken\.py: importing it raised SyntaxError: .*line 1.*$"),
])
def test_a_module_that_cannot_be_imported_stops_with_one_line(tmp_path, capsys, name, source, expected):
    path = name if not name.endswith(".py") else str(tmp_path / name)
    if source is not None:
        (tmp_path / name).write_text(source)
    with pytest.raises(SystemExit) as stop:
        cli(["--import", path, "--config-file", os.path.join(ROOT, "configs/SynthVeRi/val_mnv2.yml"),
             "OUTPUT_DIR", str(tmp_path / "out")])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.match(expected, err), err
    assert not (tmp_path / "out").exists()  # stopped before any work


def test_a_file_is_imported_once_per_process(tmp_path):
    # setup() imports again what the command line imported (for the processes --num-gpus spawns): a
    # second registration of the same dataset would fail
    (tmp_path / "counted.py").write_text("import builtins\nbuiltins.counted_imports = getattr(builtins, "
                                         "'counted_imports', 0) + 1\n")
    import builtins

    first = import_user_modules([str(tmp_path / "counted.py")])
    again = import_user_modules([os.path.relpath(tmp_path / "counted.py")])
    assert first == again and builtins.counted_imports == 1
    assert sys.modules["counted"] is first[0]
    del builtins.counted_imports, sys.modules["counted"]
    with pytest.raises(UserModuleError):
        import_user_modules(["no.such.module.here"])


@pytest.mark.parametrize("tool, argv", [
    ("export_onnx", ["--config-file", "configs/SynthVeRi/val_mnv2.yml", "--weights", "model.pth"]),
    ("search", ["--config-file", "configs/SynthVeRi/val_mnv2.yml", "--weights", "model.pth", "--index", "x",
                "--query", "q.jpg"]),
    ("analyze_features", ["--config-file", "configs/SynthVeRi/val_mnv2.yml", "--weights", "model.pth", "--out", "x"]),
    ("annotate_viewpoints", ["--dataset", "MyVehicles", "--output", "hand_labels.csv"]),
    ("compare", ["--configs", "configs/SynthVeRi/val_mnv2.yml"]),
])
def test_every_tool_that_reads_a_config_imports_first(tool, argv, tmp_path, capsys, monkeypatch):
    from .conftest import run_tool

    monkeypatch.chdir(tmp_path)  # nothing of the tool's may be written here: it stops first
    code, out, err = run_tool(tool, ["--import", str(tmp_path / "mine.py"), *argv], capsys)
    assert code == 2 and err.strip() == f"error: --import {tmp_path / 'mine.py'}: no such file (a .py file, or a " \
                                        "module name on the Python path)", err
    assert os.listdir(tmp_path) == []


def test_compare_gives_the_modules_to_each_training(monkeypatch, tmp_path):
    from fastreid_val.engine.cli import argument_parser
    from fastreid_val.experiments import compare

    seen = {}
    monkeypatch.setattr(compare, "run_training", lambda cmd, *a, **k: (seen.setdefault("cmd", cmd), (0, None))[1])
    compare.run_config("configs/SynthVeRi/val_mnv2.yml", str(tmp_path), 0, imports=["a.py", "pkg.mod"])
    assert seen["cmd"][1:3] == ["-m", "fastreid_val.engine.cli"]
    args = argument_parser().parse_args(seen["cmd"][3:])
    assert args.imports == ["a.py", "pkg.mod"] and args.config_file == "configs/SynthVeRi/val_mnv2.yml"
