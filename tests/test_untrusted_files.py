"""A model file from anyone never runs code: a checkpoint whose unpickling would create a file is handed
to every tool that reads one; the file is never created and each tool stops with its one line. A
config file cannot build Python objects either. The training's first probe and the labeller run as a user
runs them, in a process of their own; the other probes run the tools in this process."""
import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from fastreid_val.errors import CheckpointMismatchError, CheckpointNotFoundError, UnsafeModelFileError
from fastreid_val.weights_file import load_weights_file

from .conftest import run_tool, train_in_process

ROOT = os.path.join(os.path.dirname(__file__), "..")
REFUSED = re.compile(r"^error: .* was refused: loading it would import builtins\.exec, which can run code")


class Payload:
    """Unpickling it runs ``exec`` of code that creates the file ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('the checkpoint ran code')",)


def poisoned(source, path, marker, **save_kwargs):
    """``source``'s checkpoint (every entry kept) plus one entry whose unpickling creates ``marker``."""
    ckpt = torch.load(source, map_location="cpu", weights_only=True)
    ckpt["notes"] = Payload(marker)
    torch.save(ckpt, path, **save_kwargs)
    return str(path)


@pytest.fixture()
def evil(tiny_run, tmp_path):
    """(poisoned copy of the tiny run's model_final.pth, marker path that must never appear)."""
    marker = tmp_path / "created-by-the-checkpoint"
    path = poisoned(tiny_run[2], tmp_path / "model_final.pth", marker)
    return path, marker


def test_the_payload_really_runs_code_when_unpickled_in_full(evil):
    path, marker = evil
    torch.load(path, map_location="cpu", weights_only=False)  # what the tools did before
    assert marker.read_text() == "the checkpoint ran code"


def _tool(env, *argv):
    """``python argv`` as a user runs a tool, in a process of its own: (exit status, stderr)."""
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    return proc.returncode, proc.stderr


def _here(monkeypatch, capsys, env, tool, *argv):
    """``tools/<tool>.py argv`` in this process with the variables ``env`` (a process per probe would import
    torch each time): (exit status, stderr)."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if tool == "train_net":
        return train_in_process(argv, capsys)
    code, _, err = run_tool(tool, argv, capsys)
    return code, err


def _refused(code, err, marker):
    assert not marker.exists(), "the checkpoint's code ran"
    assert code == 2, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert REFUSED.search(last), last


def test_train_net_eval_only_resume_and_weights_refuse_it(evil, tiny_run, datasets_root, tmp_path, monkeypatch,
                                                          capsys, tool_logging):
    path, marker = evil
    config, opts = tiny_run[0], tiny_run[1]
    env = dict(FASTREID_DATASETS=datasets_root, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1")
    # --eval-only MODEL.WEIGHTS, before anything is built: as a user runs it, in a process of its own
    _refused(*_tool(dict(os.environ, **env), os.path.join(ROOT, "tools/train_net.py"), "--config-file", config,
                    "--eval-only", *opts, "MODEL.WEIGHTS", path, "OUTPUT_DIR", str(tmp_path / "e")), marker)
    train = ["--config-file", config]
    # fine-tuning from MODEL.WEIGHTS
    _refused(*_here(monkeypatch, capsys, env, "train_net", *train, *opts, "MODEL.WEIGHTS", path,
                    "OUTPUT_DIR", str(tmp_path / "w")), marker)
    # --resume from a folder whose last_checkpoint names it
    out = tmp_path / "r"
    out.mkdir()
    os.replace(poisoned(tiny_run[2], out / "model_0003.pth", marker), out / "model_0003.pth")
    (out / "last_checkpoint").write_text("model_0003.pth")
    _refused(*_here(monkeypatch, capsys, env, "train_net", *train, "--resume", *opts, "OUTPUT_DIR", str(out)), marker)
    # ImageNet weights given as MODEL.BACKBONE.PRETRAIN_PATH (the packaged MobileNetV2's loader)
    _refused(*_here(monkeypatch, capsys, env, "train_net", *train, *opts, "MODEL.BACKBONE.PRETRAIN_PATH", path,
                    "OUTPUT_DIR", str(tmp_path / "p")), marker)


def test_export_and_search_refuse_it(evil, tiny_run, datasets_root, tmp_path, monkeypatch, capsys, tool_logging):
    path, marker = evil
    config, opts, _, data = tiny_run
    env = dict(FASTREID_DATASETS=datasets_root)
    _refused(*_here(monkeypatch, capsys, env, "export_onnx", "--config-file", config, "--weights", path,
                    "--images", os.path.join(data, "image_query"), *opts), marker)
    assert not os.path.exists(os.path.splitext(path)[0] + ".onnx")
    _refused(*_here(monkeypatch, capsys, env, "search", "--config-file", config, "--weights", path,
                    "--index", str(tmp_path / "index"), "--gallery", os.path.join(data, "image_query"), *opts), marker)
    assert not os.path.exists(tmp_path / "index")


def test_the_labeller_refuses_it_as_backbone_weights(evil, tiny_run, tmp_path):
    path, marker = evil
    data = tiny_run[3]
    images = sorted(os.listdir(os.path.join(data, "image_train")))[:8]
    labelled = tmp_path / "hand.csv"
    labelled.write_text("".join(f"{os.path.join(data, 'image_train', n)},{i % 2}\n" for i, n in enumerate(images)))
    listing = tmp_path / "list.txt"
    listing.write_text("".join(os.path.join(data, "image_train", n) + "\n" for n in images))
    code, err = _tool(dict(os.environ), os.path.join(ROOT, "tools/label_viewpoints.py"), "--labelled", str(labelled),
                      "--images", str(listing), "--output", str(tmp_path / "viewpoints.txt"), "--weights", path,
                      "--epochs", "1", "--size", "32", "32", "--device", "cpu")
    _refused(code, err, marker)
    assert not (tmp_path / "viewpoints.txt").exists()


def test_a_config_file_never_builds_python_objects(tmp_path):
    """Configs are YAML read with yaml.safe_load: a tag that would call os.system is refused in one line."""
    marker = tmp_path / "ran"
    config = tmp_path / "evil.yml"
    config.write_text(f'_BASE_: "{os.path.abspath(ROOT)}/configs/SynthVeRi/val_mnv2.yml"\n'
                      f'OUTPUT_DIR: !!python/object/apply:os.system ["touch {marker}"]\n')
    code, err = _tool(dict(os.environ), os.path.join(ROOT, "tools/train_net.py"), "--config-file", str(config))
    assert code == 2 and not marker.exists() and "Traceback" not in err, err[-3000:]
    assert err.strip().splitlines()[-1] == (
        f"error: {config}, line 2, column 13: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object/apply:os.system' (a config holds plain YAML values: tags that would "
        "build Python objects are refused)")


# The loader itself: what it refuses, what it lets through.

def test_legacy_format_is_refused_too_and_names_the_global(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "legacy.pth"
    torch.save({"model": {"w": torch.zeros(2)}, "x": Payload(marker)}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(UnsafeModelFileError, match=r"legacy.pth was refused: loading it would import exec"):
        load_weights_file(str(path))
    assert not marker.exists()


def test_the_switch_that_turns_torch_protection_off_is_ignored(evil, monkeypatch):
    path, marker = evil
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(UnsafeModelFileError):
        load_weights_file(path)
    assert not marker.exists()


def test_numpy_numbers_and_arrays_load_under_both_numpy_module_names(tmp_path):
    """Checkpoints of older FastReID/NumPy hold NumPy numbers and arrays, pickled as numpy.core.*; NumPy 2
    pickles them as numpy._core.*. Both load; a legacy file is a plain pickle stream, so the old name can
    be written into it directly."""
    path = tmp_path / "np.pth"
    torch.save({"model": {"w": np.arange(3, dtype=np.float32)}, "metric": np.float64(81.36), "iteration": np.int64(7)},
               path, _use_new_zipfile_serialization=False)
    raw = path.read_bytes()
    assert b"numpy._core.multiarray" in raw
    old = tmp_path / "np_old.pth"
    old.write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    for p in (path, old):
        ckpt = load_weights_file(str(p))
        assert ckpt["metric"] == 81.36 and ckpt["iteration"] == 7
        np.testing.assert_array_equal(ckpt["model"]["w"], [0, 1, 2])


def test_missing_truncated_and_foreign_files(tmp_path, tiny_run):
    with pytest.raises(CheckpointNotFoundError, match="does not exist"):
        load_weights_file(str(tmp_path / "nope.pth"))
    cut = tmp_path / "cut.pth"
    cut.write_bytes(open(tiny_run[2], "rb").read()[:5000])
    with pytest.raises(CheckpointMismatchError, match="cut.pth cannot be read"):
        load_weights_file(str(cut))
    page = tmp_path / "page.pth"
    page.write_text("<html>404</html>")
    with pytest.raises(CheckpointMismatchError, match="page.pth cannot be read"):
        load_weights_file(str(page))
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"a": 1}, protocol=4))  # not a torch.save file: refused, not as code
    with pytest.raises(CheckpointMismatchError, match=r"plain.pkl cannot be read \(UnpicklingError: Unsupported operand"):
        load_weights_file(str(plain))


def test_every_checkpoint_a_training_writes_loads(tiny_run):
    """The trainer's periodic, best and final checkpoints and its resume points (TINY training of the
    main job's config; every config family's model_final.pth: tests/test_user_path.py)."""
    folder = os.path.dirname(tiny_run[2])
    names = sorted(n for n in os.listdir(folder) if n.endswith(".pth"))
    assert "model_final.pth" in names and len(names) >= 2, names
    for name in names:
        ckpt = load_weights_file(os.path.join(folder, name))
        assert {"model", "optimizer", "epoch"} <= set(ckpt), (name, sorted(ckpt))
        assert all(isinstance(v, torch.Tensor) for v in ckpt["model"].values())
