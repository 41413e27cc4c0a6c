"""Every command the docs, the Makefile and the tools' docstrings show parses with the script's own
argparse parser (the script runs up to its parse and stops there) and the configs it names load with its
overrides; every repository path the docs name exists; every `make` target named anywhere exists, and
`make bench` runs exactly the benchmarks the docs quote; each page's first command links to how the
tools run."""
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
# A command: optional VAR=value words, python (or .venv/bin/python), a script of tools/ or benchmarks/, its arguments.
COMMAND = re.compile(r"(?:^|[\s`(])((?:[A-Z_]+=\S+ )*(?:\.venv/bin/)?python ((?:tools|benchmarks)/[\w]+\.py)([^\n`]*))")


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
            "docs/EVALUATION.md", "Makefile", "tools/search.py", "benchmarks/onnx_inference.py"} <= where
    # every page that shows a command has its commands found (a page the pattern misses would go unchecked)
    shown = {os.path.relpath(p, ROOT) for p in DOCS if re.search(r"python (tools|benchmarks)/\w+\.py", open(p).read())}
    assert shown <= where, sorted(shown - where)
    scripts = {s for _, s, _ in ALL}
    assert {"tools/train_net.py", "tools/compare.py", "tools/demo.py", "tools/export_onnx.py", "tools/search.py",
            "tools/label_viewpoints.py", "benchmarks/evaluation.py", "benchmarks/search.py"} <= scripts


@pytest.mark.parametrize("where, script, args", ALL, ids=[f"{w}: {s} {' '.join(a)}"[:120] for w, s, a in ALL])
def test_every_command_parses_with_its_scripts_parser(where, script, args, monkeypatch, capsys):
    assert os.path.isfile(os.path.join(ROOT, script)), f"{where}: {script} does not exist"
    try:
        ns = parse_as_the_script_does(script, args, monkeypatch)
    except SystemExit:
        pytest.fail(f"{where}: python {script} {' '.join(args)}\n{capsys.readouterr().err}")
    check_configs(where, ns)  # and the configs it names exist and load with its overrides


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


# The first command of every page but the README says where the tools run: a link to the README's line.
RUN_HERE = "../README.md#running-the-tools"


@pytest.mark.parametrize("path", DOCS[1:], ids=[os.path.relpath(p, ROOT) for p in DOCS[1:]])
def test_the_first_command_of_a_page_links_to_how_the_tools_run(path):
    text = open(path).read()
    first = re.search(r"python (tools|benchmarks)/\w+\.py", text)
    if first is None:
        return
    link = text.rfind(RUN_HERE, 0, first.start())
    assert link >= 0 and first.start() - link < 1500, \
        f"{os.path.relpath(path, ROOT)}: its first command ({first.group(0)}) has no link to {RUN_HERE} just before it"


def _config_words(ns):
    """(config files, overrides) a parsed command names: --config-file / --configs, and KEY VALUE overrides."""
    configs = [c for c in [getattr(ns, "config_file", "")] + list(getattr(ns, "configs", None) or []) if c]
    opts = [w for w in (getattr(ns, "opts", None) or []) if w != "--"]
    return configs, opts


def check_configs(where, ns):
    """Every config a parsed command names exists and loads with the command's overrides."""
    from fastreid_val.engine import build_config

    configs, opts = _config_words(ns) if ns is not None else ([], [])
    for config in configs:
        if config.startswith(("...", "/path")) or "…" in config:
            continue  # a placeholder of the docstrings
        assert os.path.isfile(os.path.join(ROOT, config)), f"{where}: {config} does not exist"
        if len(opts) % 2 == 0 and all(re.fullmatch(r"[A-Z][A-Z_.\d]+", k) for k in opts[::2]):
            build_config(os.path.join(ROOT, config), opts)  # a stale key or value stops here, naming it


def test_every_make_target_named_anywhere_exists():
    """The docs (tests/test_docs.py), the tools' and benchmarks' docstrings and the Makefile's comments."""
    makefile = open(os.path.join(ROOT, "Makefile")).read()
    targets = set(re.findall(r"^([\w-]+):", makefile, re.M))
    texts = [ast.get_docstring(ast.parse(open(p).read())) or "" for p in SCRIPTS]
    texts += [line for line in makefile.splitlines() if line.startswith("#")]
    named = {t for text in texts for t in re.findall(r"(?<![\w-])make ([a-z][\w-]*)", text)}
    assert {"compare", "compare-labels"} <= named
    assert named <= targets, sorted(named - targets)


def test_make_bench_runs_every_benchmark_the_docs_quote():
    """Each benchmark command of README.md and docs/ is a line of `make bench` (with the same arguments; a
    ``--cases`` subset of a line that runs every case counts), but benchmarks/test_suite.py, whose figures
    it writes into the docs itself (`--write`); and `make bench` runs nothing the docs do not quote."""
    import types

    def key(ns):
        return {k: v for k, v in vars(ns).items() if k != "cases"} if isinstance(ns, argparse.Namespace) else ns

    mp = pytest.MonkeyPatch()
    try:
        bench = [(s, parse_as_the_script_does(s, a, mp)) for w, s, a in makefile_commands()
                 if s.startswith("benchmarks/")]
        quoted = [(s, a, parse_as_the_script_does(s, a, mp)) for w, s, a in doc_commands()
                  if s.startswith("benchmarks/") and s != "benchmarks/test_suite.py"]
    finally:
        mp.undo()
    missing = []
    for script, args, ns in quoted:
        ok = any(s == script and key(b) == key(ns) and set(getattr(ns or types.SimpleNamespace(), "cases", None) or ())
                 <= set(getattr(b or types.SimpleNamespace(), "cases", None) or ()) for s, b in bench)
        if not ok:
            missing.append(f"python {script} {' '.join(args)}")
    assert not missing, f"make bench does not run: {missing}"
    unquoted = [s for s, b in bench if not any(q == s and key(b) == key(ns) for q, _, ns in quoted)]
    assert not unquoted, f"make bench runs what no page quotes: {unquoted}"


def test_the_config_checker_can_fail(monkeypatch):
    from fastreid_val.errors import ConfigError

    ns = parse_as_the_script_does("tools/train_net.py", ["--config-file", "configs/VeRi/val_r50.yml", "--eval-only",
                                                         "MODEL.VAL.NOPE", "1"], monkeypatch)
    configs, opts = _config_words(ns)
    assert configs == ["configs/VeRi/val_r50.yml"] and opts == ["MODEL.VAL.NOPE", "1"]
    with pytest.raises(ConfigError, match="MODEL.VAL.NOPE"):
        check_configs("here", ns)
    with pytest.raises(AssertionError, match="nope.yml does not exist"):
        check_configs("here", argparse.Namespace(config_file="configs/nope.yml", opts=[]))
    ns = parse_as_the_script_does("tools/compare.py", ["--configs", "configs/VeRi/softmax_r50.yml", "x.yml"], monkeypatch)
    assert _config_words(ns)[0] == ["configs/VeRi/softmax_r50.yml", "x.yml"]
