"""The README and docs/ point at things that exist: every relative link (and its #anchor), every
`make` target and every `python` script or module named in their code."""
import glob
import importlib.util
import os
import re

import pytest

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
DOCS = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`([^`\n]+)`")


def _ids(paths):
    return [os.path.relpath(p, ROOT) for p in paths]


def slug(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path):
    """The anchors of a file: its headings' and its explicit ``<a id="…"></a>``."""
    text = FENCE.sub("", open(path).read())
    return {slug(h) for h in re.findall(r"^#+ (.*)$", text, re.M)} | set(re.findall(r'<a id="([\w-]+)"></a>', text))


def code(path):
    """The text of a file's code: fenced blocks and inline code spans (prose says "make" too)."""
    text = open(path).read()
    blocks = FENCE.findall(text)
    return blocks + INLINE.findall(FENCE.sub("", text))


def test_the_docs_are_there_and_the_readme_is_one_screen_of_start():
    names = {os.path.basename(p) for p in DOCS}
    assert {"GETTING_STARTED.md", "CONFIGS.md", "STUDY.md", "DEPLOY.md", "RELIABILITY.md"} <= names
    readme = open(DOCS[0]).read()
    assert len(readme.splitlines()) <= 150
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    shell = re.findall(r"^```bash\n(.*?)^```", quick, re.S | re.M)  # the other block is the demo's output
    commands = [line.split("#")[0].strip() for block in shell for line in block.splitlines()]
    assert [c for c in commands if c] == ["make demo", "make test"]


@pytest.mark.parametrize("path", DOCS, ids=_ids(DOCS))
def test_every_relative_link_resolves(path):
    text = FENCE.sub("", open(path).read())
    links = [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]
    for target in links:
        file, _, anchor = target.partition("#")
        resolved = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
        assert os.path.exists(resolved), f"{os.path.relpath(path, ROOT)}: {target} does not exist"
        if anchor:
            assert anchor in anchors(resolved), f"{os.path.relpath(path, ROOT)}: no heading for {target}"


def test_the_link_checker_can_fail(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("# Top\n\nSee [a](missing.md) and [b](#top) and [c](#nope).\n\n<a id=\"here\"></a>Here.\n")
    text = doc.read_text()
    assert LINK.findall(text) == ["missing.md", "#top", "#nope"]
    assert anchors(str(doc)) == {"top", "here"}
    assert slug("VAL against Softmax: Table 3, Table 1's λ sweep (`make compare`)") == \
        "val-against-softmax-table-3-table-1s-λ-sweep-make-compare"


def test_every_make_target_named_exists():
    makefile = open(os.path.join(ROOT, "Makefile")).read()
    targets = set(re.findall(r"^([\w-]+):", makefile, re.M))
    named = {t for p in DOCS for c in code(p) for t in re.findall(r"(?<![\w-])make ([a-z][\w-]*)", c)}
    assert {"demo", "test", "compare"} <= named
    assert named <= targets, sorted(named - targets)


def test_every_python_command_named_exists():
    scripts, modules = set(), set()
    for p in DOCS:
        for c in code(p):
            scripts |= set(re.findall(r"python ([\w./-]+\.py)", c))
            modules |= set(re.findall(r"python -m ([\w.]+)", c))
    assert {"tools/train_net.py", "tools/compare.py", "tools/export_onnx.py", "tools/search.py"} <= scripts
    for script in sorted(scripts):
        assert os.path.isfile(os.path.join(ROOT, script)), script
    for module in sorted(modules - {"pytest"}):
        assert importlib.util.find_spec(module) is not None, module


def _expand(pattern):
    """Shell brace expansion of one pattern: `a/{b,c}_x.yml` -> ['a/b_x.yml', 'a/c_x.yml']."""
    m = re.search(r"\{([^{}]*)\}", pattern)
    if not m:
        return [pattern]
    return [e for alt in m.group(1).split(",") for e in _expand(pattern[:m.start()] + alt + pattern[m.end():])]


def test_configs_md_names_every_config_and_only_configs_that_exist():
    rows = [line for line in open(os.path.join(ROOT, "docs", "CONFIGS.md")).read().splitlines()
            if line.startswith("| `")]
    listed = set()
    for row in rows:
        folder = ""
        for name in INLINE.findall(row.split("|")[1]):
            name = name.removeprefix("configs/")
            if "/" in name:
                folder = os.path.dirname(name)
            for pattern in _expand(name if "/" in name else os.path.join(folder, name)):
                found = glob.glob(os.path.join(ROOT, "configs", pattern))
                assert found, f"docs/CONFIGS.md names {pattern}, which is not in configs/"
                listed |= {os.path.relpath(f, ROOT) for f in found}
    every = {os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "configs", "**", "*.yml"), recursive=True)}
    assert every - listed == set()
