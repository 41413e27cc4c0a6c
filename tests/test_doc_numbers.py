"""A measured number quoted in two places says the same in both.

Two checks. Every "mean ± deviation" in the prose of README.md and docs/ is a cell of one of their
tables (at the prose's precision). And a registry of named facts, each a number quoted in more than one
place: a pattern per place captures it, every pattern must find it, and all the values must agree.
A fact whose wording changes needs its pattern changed here, which is the point: the other places
quoting it are then looked at too."""
import os
import re

import pytest

from .test_docs import DOCS, ROOT

PM = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?) ± (\d+(?:\.\d+)?)")
NUMBER = r"([\d.,]+)"


def _decimals(x):
    return len(x.split(".")[1]) if "." in x else 0


def agree(a, b):
    """Two quotes of one number agree when each could be the other rounded: 78.4 and 78.40, 1.7 and 1.65,
    3,363 and 3363. Other text must be equal."""
    try:
        x, y = float(a.replace(",", "")), float(b.replace(",", ""))
    except ValueError:
        return a == b
    return abs(x - y) <= 0.5 * 10 ** -_decimals(a) + 0.5 * 10 ** -_decimals(b) + 1e-9


def _table_cells(texts):
    return {pair for text in texts for line in text.splitlines() if line.startswith("|") for pair in PM.findall(line)}


def unmatched_means(texts):
    """The "mean ± deviation" of the texts' prose that no table cell of the texts holds."""
    cells = _table_cells(texts)
    prose = [pair for text in texts for line in text.splitlines() if not line.startswith("|")
             for pair in PM.findall(line)]
    return sorted({f"{m} ± {s}" for m, s in prose if not any(agree(m, cm) and agree(s, cs) for cm, cs in cells)})


def test_every_mean_and_deviation_in_prose_is_a_table_cell():
    assert unmatched_means([open(p).read() for p in DOCS]) == []


def section(text, heading):
    """The text under a heading, up to the next heading of the same or a higher level."""
    level = heading.split(" ")[0]
    start = text.index(heading + "\n")
    end = re.search(rf"^#{{1,{len(level)}}} ", text[start + len(heading):], re.M)
    return text[start:start + len(heading) + end.start()] if end else text[start:]


# name: [(file, heading or None, pattern with one group), ...]
SHARED = "### Shared cues, the generator's default"
INDEPENDENT = "### Independent ends, on the AMD EPYC machine"
FACTS = {
    "the earlier 600-iteration demo, Softmax mAP": [
        ("docs/STUDY.md", None, r"demo's seed 0 gave Softmax ([\d.]+) and VAL"),
        ("docs/STUDY.md", None, r"it does: ([\d.]+) mAP and\s+Rank-1"),
    ],
    "floor on shared cues, raw pixels mAP": [
        ("README.md", None, r"^\| floor: raw pixels 16x16 \|(?: [\d.]+ \|){2} ([\d.]+) \|"),
        ("docs/STUDY.md", SHARED, r"^\| floor: raw pixels 16x16 \| - \|(?: [\d.]+ \|){2} ([\d.]+) \|"),
    ],
    "floor on shared cues, look-alike oracle mAP": [
        ("README.md", None, r"^\| floor: oracle: model and colour \|(?: [\d.]+ \|){2} ([\d.]+) \|"),
        ("docs/STUDY.md", SHARED, r"^\| floor: oracle: model and colour \| - \|(?: [\d.]+ \|){2} ([\d.]+) \|"),
    ],
    "study, shared cues, Softmax seed 0 mAP": [
        ("docs/STUDY.md", None, r"the study's 900 \(([\d.]+) and [\d.]+, cross-view"),
        ("docs/STUDY.md", SHARED, r"By seed, mAP: Softmax ([\d.]+) /"),
    ],
    "study, shared cues, VAL seed 0 mAP": [
        ("docs/STUDY.md", None, r"the study's 900 \([\d.]+ and ([\d.]+), cross-view"),
        ("docs/STUDY.md", SHARED, r"VAL ([\d.]+) / [\d.]+ / [\d.]+, λ=10"),
    ],
    "study, shared cues, VAL cross-view mAP": [
        ("README.md", None, r"\(cross-view ([\d.]+), [\d.]+, [\d.]+\); with independent"),
        ("docs/STUDY.md", SHARED, r"^\| val_mnv2 \|(?: [^|]+ \|){8} ([\d.]+) ±"),
    ],
    "study, shared cues, Softmax cross-view mAP": [
        ("README.md", None, r"\(cross-view [\d.]+, ([\d.]+), [\d.]+\); with independent"),
        ("docs/STUDY.md", SHARED, r"^\| softmax_mnv2 \|(?: [^|]+ \|){8} ([\d.]+) ±"),
    ],
    "study, shared cues, V=1 cross-view mAP": [
        ("README.md", None, r"\(cross-view [\d.]+, [\d.]+, ([\d.]+)\); with independent"),
        ("docs/STUDY.md", SHARED, r"^\| val_v1_mnv2 \|(?: [^|]+ \|){8} ([\d.]+) ±"),
    ],
    "study, independent ends, VAL cross-view mAP": [
        ("README.md", None, r"\(cross-view ([\d.]+), [\d.]+, [\d.]+\)\. The shared cues"),
        ("docs/STUDY.md", INDEPENDENT, r"^\| val_mnv2 \|(?: [^|]+ \|){8} ([\d.]+) ±"),
    ],
    "study, VAL's gain over V=1 with shared cues": [
        ("README.md", None, r"partition's gain \((−[\d.]+)\s+mAP with"),
        ("docs/STUDY.md", None, r"\*\*no\*\*: (−[\d.]+) with shared cues against"),
        ("docs/STUDY.md", None, r"VAL's gain over V=1 is (−[\d.]+) with shared cues"),
    ],
    "study, VAL's gain over V=1 on the independent ends": [
        ("README.md", None, r"mAP with, (−[\d.]+) without\)"),
        ("docs/STUDY.md", None, r"with shared cues against (−[\d.]+) on the independent ends"),
        ("docs/STUDY.md", None, r"with shared cues and (−[\d.]+)\s+on the independent ends"),
    ],
    "study, VAL's viewpoint accuracy, shared cues (%)": [
        ("README.md", None, r"yet (\d+)–\d+ % of the training samples"),
        ("docs/STUDY.md", None, r"yet (\d+) % \(shared cues\) and \d+ % \(independent ends\)"),
    ],
    "study, VAL's viewpoint accuracy, independent ends (%)": [
        ("README.md", None, r"yet \d+–(\d+) % of the training samples"),
        ("docs/STUDY.md", None, r"yet \d+ % \(shared cues\) and (\d+) % \(independent ends\)"),
    ],
    "the earlier 600-iteration main job's wall time, s": [
        ("docs/STUDY.md", None, r"\*\*(\d+) s = [\d.]+\s+minutes\*\* at 600 iterations"),
        ("docs/STUDY.md", None, r"; (\d+) s = [\d.]+ min: the demo's earlier 600 iterations"),
    ],
    "the earlier 600-iteration main job's wall time, minutes": [
        ("docs/STUDY.md", None, r"\*\*\d+ s = ([\d.]+)\s+minutes\*\* at 600 iterations"),
        ("docs/STUDY.md", None, r"; \d+ s = ([\d.]+) min: the demo's earlier 600 iterations"),
    ],
    "training iteration on the AMD EPYC machine, s": [
        ("docs/STUDY.md", None, r"there a training iteration takes ([\d.]+–[\d.]+) s"),
        ("docs/STUDY.md", None, r"AVX2 kernels, 2 threads; ([\d.]+–[\d.]+) s a training iteration"),
        ("docs/STUDY.md", None, r"where they ran, a training\s+iteration took ([\d.]+–[\d.]+) s"),
    ],
    "training iteration on the first machine, s": [
        ("docs/STUDY.md", None, r"a training iteration of the recipe took\s+([\d.]+) s"),
        ("docs/STUDY.md", None, r"\(([\d.]+) s on the first\s+machine\)"),
        ("docs/STUDY.md", None, r"\(([\d.]+) s when the tables above were measured\)"),
    ],
    "FastReID's faiss-CPU re-ranking on the first machine, s": [
        ("docs/EVALUATION.md", None, r"distance\): ([\d.]+) s and [\d.]+ GB at VeRi-776 size"),
        ("docs/EVALUATION.md", None, r"; ([\d.]+) s on the first machine"),
        ("docs/STUDY.md", None, r"28\.3 s in all with faiss-CPU \(([\d.]+) s distance"),
    ],
    "FastReID's faiss-CPU re-ranking on the first machine, GB": [
        ("docs/EVALUATION.md", None, r"distance\): [\d.]+ s and ([\d.]+) GB at VeRi-776 size"),
        ("docs/STUDY.md", None, r"0\.95 s rank\), peak RSS ([\d.]+) GB"),
    ],
    "installation time, minutes": [
        ("README.md", None, r"adds about (\d+) minutes of installation"),
        ("docs/GETTING_STARTED.md", None, r"for the installation, about (\d+) minutes"),
        ("Makefile", None, r"a first run takes about (\d+) minutes"),
    ],
    "re-ranking speed-up at VeRi-776 size": [
        ("README.md", None, r"([\d.]+)× faster than FastReID's faiss-CPU path"),
        ("docs/GETTING_STARTED.md", None, r"\(\*\*([\d.]+)× faster\*\*\)"),
        ("docs/EVALUATION.md", None, r"\*\*([\d.]+)x faster\*\*"),
    ],
    "re-ranking peak memory ratio at VeRi-776 size": [
        ("README.md", None, r"with ([\d.]+)× lower peak memory"),
        ("docs/GETTING_STARTED.md", None, r"\(\*\*([\d.]+)× lower\*\*\)"),
        ("docs/EVALUATION.md", None, r"\*\*peak RSS ([\d.]+)x lower\*\*"),
    ],
    "re-ranking size limit, images": [
        ("docs/GETTING_STARTED.md", None, r"bound \(about ([\d,]+) images"),
        ("docs/EVALUATION.md", None, r"\): about ([\d,]+) images at k1"),
    ],
    "evaluation speed-up, every metric against FastReID's three, VERI-Wild small": [
        ("README.md", None, r"with every\s+metric ([\d.]+)× the speed of FastReID's evaluator"),
        ("docs/GETTING_STARTED.md", None, r"\(\*\*([\d.]+)×\*\*\) with every metric"),
        ("docs/EVALUATION.md", None, r"1,896 MB: \*\*([\d.]+)x\*\*"),
    ],
    "every metric at VERI-Wild large size, s": [
        ("README.md", None, r"VERI-Wild large\s+exact in ([\d.]+) s"),
        ("docs/GETTING_STARTED.md", None, r"\*\*([\d.]+) s\*\*, peak RSS"),
        ("docs/EVALUATION.md", None, r"\| \*\*([\d.]+) s\*\* \("),
    ],
    "every metric at VERI-Wild large size, peak RSS MB": [
        ("README.md", None, r"exact in [\d.]+ s and ([\d,]+) MB"),
        ("docs/GETTING_STARTED.md", None, r"peak RSS \*\*([\d,]+) MB\*\*"),
        ("docs/EVALUATION.md", None, r"\| \*\*([\d,]+) MB\*\* \("),
    ],
}


def fact_values(places, read):
    """[(place, value)] of one fact; ``read(file)`` gives a file's text. A space in a pattern matches any
    white space, line breaks included (prose gets re-wrapped). A pattern that finds nothing is reported
    with the value None."""
    values = []
    for file, heading, pattern in places:
        text = read(file)
        if heading:
            text = section(text, heading) if heading + "\n" in text else ""
        found = re.findall(pattern.replace(" ", r"\s+"), text, re.M)
        where = f"{file}{' (' + heading + ')' if heading else ''}: /{pattern}/"
        values += [(where, v) for v in found] or [(where, None)]
    return values


def disagreement(values):
    """A message when a place finds nothing or two values differ; None when they all agree."""
    missing = [w for w, v in values if v is None]
    if missing:
        return f"not found (reworded? update the pattern here): {missing}"
    first = values[0][1]
    if not all(agree(first, v) for _, v in values):
        return "differ: " + "; ".join(f"{w} = {v}" for w, v in values)
    return None


def _read(file):
    return open(os.path.join(ROOT, file)).read()


@pytest.mark.parametrize("name", sorted(FACTS))
def test_a_number_quoted_in_two_places_agrees(name):
    values = fact_values(FACTS[name], _read)
    assert len({w.split(":")[0] for w, _ in values}) >= 1 and len(values) >= 2
    assert disagreement(values) is None, f"{name}: {disagreement(values)}"


def test_the_number_checkers_can_fail():
    assert agree("78.4", "78.40") and agree("1.7", "1.65") and agree("3,363", "3363") and agree("0.34–0.42", "0.34–0.42")
    assert not agree("78.4", "78.46") and not agree("1.7", "1.64") and not agree("7.4", "8")
    docs = {"a.md": "# A\n\nVAL gives 69.0 ± 1.6 and 70.1 ± 1.6 mAP; the demo took 449 s = 7.5 minutes.\n\n"
                    "| method | mAP |\n|---|---|\n| val | 69.02 ± 1.61 |\n",
            "b.md": "# B\n\n## Times\n\nthe main job: 451 s (7.5 min)\n\n## Other\n\n451 s elsewhere\n"}
    assert unmatched_means(list(docs.values())) == ["70.1 ± 1.6"]
    assert section(docs["b.md"], "## Times") == "## Times\n\nthe main job: 451 s (7.5 min)\n\n"
    places = [("a.md", None, r"took (\d+) s ="), ("b.md", "## Times", r"main job: (\d+) s")]
    assert disagreement(fact_values(places, docs.get)).startswith("differ: ")
    assert disagreement(fact_values([("a.md", None, r"= ([\d.]+) minutes"), ("b.md", None, r"\(([\d.]+) min\)")],
                                    docs.get)) is None
    assert disagreement(fact_values(places[:1] + [("b.md", "## Other", r"main job: (\d+) s")],
                                    docs.get)).startswith("not found")


DEMO_TABLE = re.compile(r'^<!-- demo-table machine="([^"]+)" -->\n(.*?)^<!-- /demo-table -->$', re.M | re.S)
MACHINES = "## The machines"


def demo_tables(text):
    """[(machine, rows of cells)] of the tables between ``demo-table`` markers."""
    return [(machine, [[c.strip() for c in line.strip().strip("|").split("|")] for line in body.splitlines()])
            for machine, body in DEMO_TABLE.findall(text)]


def demo_table_disagreement(readme, study):
    """Why the README's demo table is not the main job's table of STUDY.md on a machine STUDY.md names;
    None when it is."""
    ours, theirs = demo_tables(readme), demo_tables(section(study, "## The main job (`make demo`)"))
    if len(ours) != 1 or len(theirs) != 1:
        return f"one marked table in each: README has {len(ours)}, STUDY's main job {len(theirs)}"
    (machine, rows), (their_machine, their_rows) = ours[0], theirs[0]
    if f"**The {machine} machine**" not in section(study, MACHINES):
        return f"README's table names {machine!r}, which is not one of STUDY.md's machines"
    if machine != their_machine:
        return f"machines differ: README {machine!r}, STUDY {their_machine!r}"
    if len(rows) < 4 or rows[0][:4] != ["method", "Rank-1", "Rank-5", "mAP"] or [r[0] for r in rows[2:4]] != ["Softmax", "VAL"]:
        return f"not the demo's table: {rows[:1]}"
    differ = [f"{r[0]}/{rows[0][j]}: README {a}, STUDY {b}" for r, t in zip(rows, their_rows)
              for j, (a, b) in enumerate(zip(r, t)) if a != b]
    if len(rows) != len(their_rows) or any(len(r) != len(t) for r, t in zip(rows, their_rows)) or differ:
        return f"cells differ: {differ or 'row or column counts'}"
    return None


def test_the_readmes_demo_table_is_the_main_jobs_on_the_machine_it_names():
    assert demo_table_disagreement(_read("README.md"), _read("docs/STUDY.md")) is None


def test_the_demo_table_check_can_fail():
    study = _read("docs/STUDY.md")
    readme = _read("README.md")
    cell = re.search(r"^\| VAL \| ([\d.]+) \|", readme, re.M)
    assert cell and demo_table_disagreement(readme.replace(cell.group(0), "| VAL | 1.00 |"), study).startswith(
        "cells differ: ['VAL/Rank-1")
    machine = DEMO_TABLE.search(readme).group(1)
    assert "not one of STUDY.md's machines" in demo_table_disagreement(
        readme.replace(f'machine="{machine}"', 'machine="Cray"'), study)
    other = "AMD EPYC" if machine != "AMD EPYC" else "Intel Xeon"
    assert demo_table_disagreement(readme.replace(f'machine="{machine}"', f'machine="{other}"'),
                                   study).startswith("machines differ")
    assert demo_table_disagreement(readme.replace("<!-- /demo-table -->", ""), study).startswith("one marked table")
