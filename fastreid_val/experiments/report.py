"""One results table for the demo and the comparison: methods, then the reference floors."""
from typing import Dict, Iterable, Sequence, Tuple, Union

__all__ = ["COLUMNS", "markdown_table", "cell"]

# Stock metrics, then the same protocol restricted to matches seen from the query's viewpoint
# (sview) and from the other one (xview), then how often a wrong Rank-1 match is a look-alike.
COLUMNS = ("Rank-1", "Rank-5", "mAP", "mINP", "sview-Rank-1", "sview-mAP", "xview-Rank-1", "xview-mAP",
           "lookalike-wrong-Rank-1")

Value = Union[float, Tuple[float, float, int]]


def cell(value: Value) -> str:
    """``12.34`` for a number or a single run, ``12.34 ± 0.56`` for (mean, sample std, runs > 1)."""
    if isinstance(value, tuple):
        mean, std, n = value
        return f"{mean:.2f} ± {std:.2f}" if n > 1 else f"{mean:.2f}"
    return f"{value:.2f}"


def markdown_table(rows: Iterable[Tuple[Union[str, Tuple[str, ...]], Dict[str, Value]]],
                   columns: Sequence[str] = COLUMNS, first: Sequence[str] = ("method",)) -> str:
    """A Markdown table: one row per ``(label or labels, {column: value})``, the labels under ``first``;
    a missing column shows as ``-``."""
    lines = ["| " + " | ".join((*first, *columns)) + " |", "|---" * (len(first) + len(columns)) + "|"]
    for labels, values in rows:
        labels = (labels,) if isinstance(labels, str) else tuple(labels)
        lines.append("| " + " | ".join((*labels, *(cell(values[c]) if c in values else "-" for c in columns)))
                     + " |")
    return "\n".join(lines) + "\n"
