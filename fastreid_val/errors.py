"""Errors caused by the user's input: a config value, a dataset, an annotation, a checkpoint, a folder.

Every such error derives from :class:`UserInputError`; the command-line tools print it as one line
(``error: …``) and exit with status 2. Any other exception is a defect and keeps its traceback.
Each class also derives from the built-in exception a caller would expect (``ValueError``,
``FileNotFoundError``, ...), so ``except ValueError`` keeps working.
"""
import re

__all__ = ["UserInputError", "InvalidConfigError", "MissingFileError", "OutputDirError", "UnreadableImageError",
           "EmptyGalleryError", "IndexNotFoundError", "IndexMismatchError", "ModelFileError", "one_line"]


class UserInputError(Exception):
    """Base of every error that describes a bad input; its message says what to change."""


class InvalidConfigError(UserInputError, ValueError):
    """A config value out of range, or a combination of settings that cannot work."""


class MissingFileError(UserInputError, FileNotFoundError):
    """An input file or folder named by the user does not exist."""


class OutputDirError(UserInputError, OSError):
    """An output folder or file cannot be created or written."""


class UnreadableImageError(UserInputError, OSError):
    """An image listed by a dataset cannot be decoded."""


class EmptyGalleryError(UserInputError, ValueError):
    """A gallery folder or list (``tools/search.py --gallery``) that holds no image."""


class IndexNotFoundError(UserInputError, FileNotFoundError):
    """A search index is queried before it was built."""


class IndexMismatchError(UserInputError, ValueError):
    """A search index built by another model, or one whose files cannot be read."""


class ModelFileError(UserInputError, ValueError):
    """A model file that cannot serve here (an ONNX file without the export's metadata, a wrong suffix)."""


def one_line(error: BaseException) -> str:
    """The error's message on one line.

    An error raised in a data-loader worker reaches the main process with the worker's traceback in
    its message; its last line is the original message.
    """
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if len(lines) > 1 and "Traceback" in str(error):
        # "package.module.ClassName: message" -> "message"
        return re.sub(rf"^[\w.]*\b{type(error).__name__}: ", "", lines[-1])
    return " ".join(line.strip() for line in lines)
