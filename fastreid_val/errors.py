"""Errors caused by the user's input: a config value, a dataset, an annotation, a checkpoint, a folder.

Every such error derives from :class:`UserInputError`; the command-line tools print it as one line
(``error: …``) and exit with status 2. Any other exception is a defect and keeps its traceback.
Each class also derives from the built-in exception a caller would expect (``ValueError``,
``FileNotFoundError``, ...), so ``except ValueError`` keeps working.

This module is the home of every such class; the modules that raise them import them from here (and
some re-export them, e.g. ``fastreid_val.data.annotations.AnnotationError``).
"""
import re

__all__ = ["UserInputError", "InvalidConfigError", "ConfigError", "MissingFileError", "DatasetNotFoundError",
           "AnnotationError", "UnreadableImageError", "OutputDirError", "CheckpointMismatchError",
           "CheckpointNotFoundError", "NonFiniteLossError", "LowAccuracyError", "PretrainedWeightsError",
           "EmptyGalleryError", "RerankTooLargeError", "IndexNotFoundError", "IndexMismatchError", "ModelFileError",
           "UnsafeModelFileError", "RunFailedError", "ExportCheckError", "AnnotationLockedError", "ServerAddressError",
           "OutputFileError", "UserModuleError", "IndexLockedError", "IndexUnreachableError", "MetadataError",
           "one_line"]


class UserInputError(Exception):
    """Base of every error that describes a bad input; its message says what to change."""


class InvalidConfigError(UserInputError, ValueError):
    """A config value out of range, or a combination of settings that cannot work."""


class ConfigError(UserInputError, KeyError):
    """An unknown or malformed config key; the message names it and where it came from."""

    def __str__(self):
        return self.args[0]  # KeyError would print the message quoted


# Inputs: files, datasets, annotations, images.

class MissingFileError(UserInputError, FileNotFoundError):
    """An input file or folder named by the user does not exist."""


class DatasetNotFoundError(UserInputError, FileNotFoundError):
    """A dataset folder or file is missing; the message says where and what layout is expected."""


class AnnotationError(UserInputError, ValueError):
    """A malformed or contradictory annotation; the message names file and line."""


class UnreadableImageError(UserInputError, OSError):
    """An image listed by a dataset cannot be decoded."""


# Outputs and training state: folders, checkpoints, the run itself.

class OutputDirError(UserInputError, OSError):
    """An output folder or file cannot be created or written."""


class OutputFileError(UserInputError, ValueError):
    """A file of a finished run read back (``results.json``, ``cmc.json`` ...) that is empty or cut short."""


class AnnotationLockedError(OutputDirError):
    """A hand-label CSV already open in another annotation page's process (a second writer would lose answers)."""


class ServerAddressError(UserInputError, OSError):
    """The annotation page cannot listen on the address asked for (``--host``, ``--port``)."""


class CheckpointMismatchError(UserInputError, RuntimeError):
    """A checkpoint that does not fit the model (another V or number of identities) or cannot be read."""


class CheckpointNotFoundError(UserInputError, FileNotFoundError):
    """A checkpoint named by the user (``MODEL.WEIGHTS``, ``--resume``) does not exist."""


class UnsafeModelFileError(UserInputError, ValueError):
    """A PyTorch file whose unpickling would import more than tensors, numbers, strings and containers
    (it could run code): refused before anything of it ran (:mod:`fastreid_val.weights_file`)."""


class NonFiniteLossError(UserInputError, FloatingPointError):
    """A loss term became NaN or infinite; training stopped, the last good checkpoint is kept."""


class NonFiniteFeaturesError(UserInputError, FloatingPointError):
    """A model gave NaN or infinite test features: its metrics would mean nothing, so none are reported."""


class RunFailedError(UserInputError, RuntimeError):
    """A training run of the demo or a comparison ended with an error (its own message is shown above it),
    or its results file cannot serve (written by an earlier version)."""


class LowAccuracyError(UserInputError, RuntimeError):
    """The labeller's held-out accuracy is under the threshold (labels not written)."""


class PretrainedWeightsError(UserInputError, ValueError):
    """ImageNet weights that do not fit the backbone they are loaded into."""


class EmptyGalleryError(UserInputError, ValueError):
    """A gallery folder or list (``tools/search.py --gallery``) that holds no image."""


class RerankTooLargeError(UserInputError, ValueError):
    """A test set too large for k-reciprocal re-ranking within the memory limit (``TEST.RERANK.ENABLED``)."""


class IndexNotFoundError(UserInputError, FileNotFoundError):
    """A search index is queried before it was built."""


class IndexMismatchError(UserInputError, ValueError):
    """A search index built by another model, or one whose files cannot be read."""


class IndexLockedError(OutputDirError):
    """A search index folder being written by another indexing run (a second writer is refused)."""


class IndexUnreachableError(UserInputError, ConnectionError):
    """A search service named by ``--index`` (``milvus://HOST:PORT/COLLECTION``) that does not answer."""


class MetadataError(UserInputError, ValueError):
    """Image metadata or a search filter that cannot serve: a bad ``--metadata`` line (file and line named),
    a time that does not parse, an unknown camera."""


class ModelFileError(UserInputError, ValueError):
    """A model file that cannot serve here (an ONNX file without the export's metadata, a wrong suffix)."""


class UserModuleError(UserInputError, ImportError):
    """A module of the user's named with ``--import`` that cannot be found, or that raised while imported."""


# Not a bad input: a check of our own output that failed (exit status 1).

class ExportCheckError(RuntimeError):
    """An exported ONNX graph is not what was promised (non-standard operators, or other features than
    PyTorch's); nothing was written."""


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
