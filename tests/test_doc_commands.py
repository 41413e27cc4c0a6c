"""Every command the docs, the Makefile and the tools' docstrings show parses with the script's own
argparse parser (the script runs up to its parse and stops there), and every repository path the docs
name exists."""
import argparse
import ast
import glob
import os
import re
import runpy
import shlex
import sys

import pytest

from .test_docs import DOCS, FENCE, ROOT, code

SCRIPTS = sorted(glob.glob(os.path.join(ROOT, "tools", "*.py")) + glob.glob(os.path.join(ROOT, "benchmarks", "*.py")))
# A command: optional VAR=value words, python, a script of tools/ or benchmarks/, its arguments.
COMMAND = re.compile(r"(?:^|[\s`(])((?:[A-Z_]+=\S+ )*python ((?:tools|benchmarks)/[\w]+\.py)([^\n`]*))")


def commands_in(text):
    """(script, argument words) of each command in a text: backslash continuations joined, shell comments,
    ``[optional ...]`` groups and the ``| ...`` of a Markdown table cell dropped."""
    text = re.sub(r"\\\n\s*", " ", text)
    found = []
    for _, script, rest in COMMAND.findall(text):
        rest = re.sub(r"\s#.*", "", rest.split(" | ")[0])
        rest = re.sub(r"\[[^\[\]]*\]", "", rest)
        found.append((script, shlex.split(rest)))
    return found


def doc_commands():
    found = []
    for path in DOCS:
        text = FENCE.sub("", open(path).read())
        spans = FENCE.findall(open(path).read()) + [s.replace("\n", " ") for s in re.findall(r"`([^`]+)`", text)]
        found += [(os.path.relpath(path, ROOT), *c) for span in spans for c in commands_in(span)]
    return found


def docstring_commands():
    found = []
    for path in SCRIPTS:
        doc = ast.get_docstring(ast.parse(open(path).read())) or ""
        found += [(os.path.relpath(path, ROOT), *c) for c in commands_in(doc)]
    return found


def makefile_commands():
    text = open(os.path.join(ROOT, "Makefile")).read()
    text = text.replace("$(if $(RECIPE),--opts $(RECIPE))", "").replace("$(NAME)", "today").replace("$(PY)", "python")
    return [("Makefile", *c) for line in text.splitlines() if line.startswith("\t") for c in commands_in(line)]


class _Parsed(Exception):
    def __init__(self, namespace):
        self.namespace = namespace


def parse_as_the_script_does(script, args, monkeypatch):
    """The namespace the script's own parser makes of ``args``; the script stops at its parse. SystemExit
    (argparse's error, with its message on stderr) when the parser refuses them."""
    source = open(os.path.join(ROOT, script)).read()
    if not re.search(r"parse_args|\bcli\(\)", source):  # parses nothing: takes no arguments
        assert args == [], f"{script} takes no arguments, the command gives {args}"
        return None
    real = argparse.ArgumentParser.parse_args

    def parse_and_stop(self, argv=None, namespace=None):
        raise _Parsed(real(self, argv, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_and_stop)
    monkeypatch.setattr(sys, "argv", [script, *args])
    monkeypatch.chdir(ROOT)
    try:
        runpy.run_path(os.path.join(ROOT, script), run_name="__main__")
    except _Parsed as parsed:
        return parsed.namespace
    raise AssertionError(f"{script} finished without parsing its arguments")


ALL = doc_commands() + docstring_commands() + makefile_commands()


def test_the_commands_are_found():
    where = {w for w, _, _ in ALL}
    assert {"README.md", "docs/GETTING_STARTED.md", "docs/DEPLOY.md", "docs/STUDY.md", "docs/CONFIGS.md",
            "Makefile", "tools/search.py", "benchmarks/onnx_inference.py"} <= where
    scripts = {s for _, s, _ in ALL}
    assert {"tools/train_net.py", "tools/compare.py", "tools/demo.py", "tools/export_onnx.py", "tools/search.py",
            "tools/label_viewpoints.py", "benchmarks/evaluation.py", "benchmarks/search.py"} <= scripts


@pytest.mark.parametrize("where, script, args", ALL, ids=[f"{w}: {s} {' '.join(a)}"[:120] for w, s, a in ALL])
def test_every_command_parses_with_its_scripts_parser(where, script, args, monkeypatch, capsys):
    assert os.path.isfile(os.path.join(ROOT, script)), f"{where}: {script} does not exist"
    try:
        parse_as_the_script_does(script, args, monkeypatch)
    except SystemExit:
        pytest.fail(f"{where}: python {script} {' '.join(args)}\n{capsys.readouterr().err}")


def test_the_command_checker_can_fail(monkeypatch, capsys):
    text = "```bash\npython tools/search.py --weights m.pth --index x \\\n    --query a.jpg [b.jpg ...]   # one\n```"
    assert commands_in(text) == [("tools/search.py", ["--weights", "m.pth", "--index", "x", "--query", "a.jpg"])]
    ns = parse_as_the_script_does("tools/search.py", ["--weights", "m.pth", "--index", "x", "--query", "a.jpg"],
                                  monkeypatch)
    assert ns.query == ["a.jpg"] and ns.index == "x"
    with pytest.raises(SystemExit):  # a required option left out
        parse_as_the_script_does("tools/search.py", ["--weights", "m.pth", "--query", "a.jpg"], monkeypatch)
    assert "required: --index" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a choice the parser does not have
        parse_as_the_script_does("benchmarks/evaluation.py", ["--cases", "compiled", "faiss rerank"], monkeypatch)
    with pytest.raises(AssertionError, match="takes no arguments"):
        parse_as_the_script_does("benchmarks/main_job.py", ["--fast"], monkeypatch)


# Paths the docs name that the project creates when it runs, or that belong to the user's datasets
# (GETTING_STARTED's dataset of one's own: its module and folder): never in the repository.
CREATED = ("output/", "datasets/", ".venv/", "$", "~", "/", "http", "my_vehicles")
DATASET_FOLDERS = {"veri/", "vehicleid/", "vehicleid/viewpoints.txt", "train_test_split/", "image_train/",
                   "image_query/", "image_test/"}
EXTENSIONS = r"py|yml|yaml|md|png|txt|json|csv|pth|pt|onnx|jpg|faiss|ini"


def _fastreid_parent():
    import fastreid

    return os.path.dirname(os.path.dirname(fastreid.__file__))


def named_paths(text):
    """The words of code spans and blocks that are paths: a folder (``x/``) or a file with an extension,
    with ``:line`` suffixes and surrounding punctuation dropped."""
    words = {w.strip("()[]'\",;.").rstrip(":") for block in text for w in block.split()}
    words = {re.sub(r":\d+$", "", w) for w in words}
    return {w for w in words if re.fullmatch(r"[\w.{},*<>$~/-]*[\w}*]/|[\w.{},*<>$~/-]+\.(" + EXTENSIONS + ")", w)}


def _expand(pattern):
    m = re.search(r"\{([^{}]*)\}", pattern)
    if not m:
        return [pattern]
    return [e for alt in m.group(1).split(",") for e in _expand(pattern[:m.start()] + alt + pattern[m.end():])]


def resolves(path, bases):
    """A repository path (or, for a bare .py/.yml name, a file of that name) that exists under one of ``bases``."""
    for p in _expand(path):
        if "/" in p.rstrip("/"):
            ok = any(glob.glob(os.path.join(b, p)) for b in bases)
        elif p.endswith("/"):
            ok = any(os.path.isdir(os.path.join(b, p)) for b in bases)
        elif p.endswith((".py", ".yml")):
            ok = any(glob.glob(os.path.join(b, "**", p), recursive=True) for b in bases)
        else:
            ok = True  # a bare file name the project or the user writes (results.json, log.txt, ...)
        if not ok:
            return False
    return True


BASES = [ROOT, os.path.join(ROOT, "fastreid_val"), os.path.join(ROOT, "fastreid_val", "data"),
         os.path.join(ROOT, "configs"), os.path.join(ROOT, "tests")]


@pytest.mark.parametrize("path", DOCS, ids=[os.path.relpath(p, ROOT) for p in DOCS])
def test_every_repository_path_named_exists(path):
    bases = BASES + [_fastreid_parent()]
    named = named_paths(code(path)) - DATASET_FOLDERS
    missing = sorted(p for p in named if not p.startswith(CREATED) and not resolves(p, bases))
    assert not missing, f"{os.path.relpath(path, ROOT)} names paths that do not exist: {missing}"


def test_the_path_checker_can_fail():
    bases = BASES + [_fastreid_parent()]
    text = ["see fastreid_val/modeling/losses.py and configs/VeRi/{val_r50,val_r51}.yml",
            "python tools/nope.py --out output/x/y.png; fastreid/utils/faiss_utils.py:19 and data/build.py, "
            "heads.py, nope_mnv2.yml, results.json, MODEL.PIXEL_MEAN/STD"]
    named = named_paths(text)
    assert named == {"fastreid_val/modeling/losses.py", "configs/VeRi/{val_r50,val_r51}.yml", "tools/nope.py",
                     "output/x/y.png", "fastreid/utils/faiss_utils.py", "data/build.py", "heads.py",
                     "nope_mnv2.yml", "results.json"}
    missing = {p for p in named if not p.startswith(CREATED) and not resolves(p, bases)}
    assert missing == {"configs/VeRi/{val_r50,val_r51}.yml", "tools/nope.py", "nope_mnv2.yml"}
