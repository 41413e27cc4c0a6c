"""Text files a user hands us (annotation files, image and label lists, hand-label CSVs), read so that a
bad one stops with one line naming the file (and the line) instead of a decoder's traceback.

UTF-8, with or without the byte-order mark some editors write at the start; anything else is refused.
"""
import csv
import math
from typing import Iterator, List, Tuple

from .errors import AnnotationError, MissingFileError

__all__ = ["text_lines", "csv_rows", "finite_number"]


def text_lines(path: str) -> List[str]:
    """The lines of ``path`` (newlines kept, a UTF-8 byte-order mark dropped)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return f.readlines()
    except FileNotFoundError:
        raise MissingFileError(f"{path} does not exist") from None
    except UnicodeDecodeError as e:
        raise AnnotationError(f"{path}: not a UTF-8 text file ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise AnnotationError(f"{path} cannot be read ({e.strerror or e})") from None


def csv_rows(path: str) -> Iterator[Tuple[int, List[str]]]:
    """``(line number, fields)`` of the CSV file ``path``; a field over the csv module's limit (128 KB),
    a NUL byte or an open quote at the end stop with the file and line."""
    reader = csv.reader(text_lines(path))
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise AnnotationError(f"{path}:{reader.line_num}: not a CSV line ({e})") from None
        yield reader.line_num, row


def finite_number(text: str, where: str, rule: str) -> float:
    """``text`` as a finite number, or an :class:`AnnotationError` at ``where`` saying ``rule``."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise AnnotationError(f"{where}: {rule}, got {text[:40]!r}")
    return value
