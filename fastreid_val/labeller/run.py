"""The labelling step as a whole: every input checked before any training, then train, refuse below the
accuracy threshold, label every image, and write the labels with their confusion matrix and contact sheet."""
import logging
import os
from dataclasses import dataclass

import numpy as np

from ..errors import LowAccuracyError, MissingFileError, OutputDirError
from .classifier import HeldOut, LabellerSettings, label_images, train_labeller
from .files import read_image_list, read_labelled_csv, write_labels
from .report import confusion_matrix, contact_sheet, format_confusion, write_confusion

logger = logging.getLogger(__name__)

__all__ = ["LabellerResult", "side_files", "run"]


@dataclass
class LabellerResult:
    accuracy: float  # on the held-out hand labels
    held_out: HeldOut
    confusion: np.ndarray  # [V, V], rows hand labels
    output: str  # the labels file
    confusion_file: str
    contact_sheet: str

    def summary(self) -> str:
        return "\n".join([f"held-out accuracy {self.accuracy:.3f}; labels written to {self.output}",
                          format_confusion(self.confusion),
                          f"confusion matrix: {self.confusion_file}",
                          f"contact sheet (random and least confident images per viewpoint): {self.contact_sheet}"])


def side_files(output: str):
    """(confusion matrix CSV, contact sheet PNG) written next to the labels file ``output``."""
    stem = os.path.splitext(output)[0]
    return stem + ".confusion.csv", stem + ".contact.png"


def run(labelled_csv: str, image_list: str, output: str, s: LabellerSettings, min_accuracy: float = 0.9,
        force: bool = False, image_root: str = "", ext: str = ".jpg") -> LabellerResult:
    for what, path in (("hand labels", labelled_csv), ("weights", s.weights)):
        if path and not os.path.isfile(path):
            raise MissingFileError(f"{what} file {path} does not exist")
    if not os.path.exists(image_list):
        raise MissingFileError(f"image list {image_list} does not exist (a list file or a folder of images)")
    out_dir = os.path.dirname(os.path.abspath(output))
    if os.path.isdir(output) or not os.path.isdir(out_dir) or not os.access(out_dir, os.W_OK):
        raise OutputDirError(f"cannot write {output}: it is a folder, or folder {out_dir} does not exist or is "
                             "not writable")
    rows = read_labelled_csv(labelled_csv, s.num_viewpoints)
    paths = read_image_list(image_list, image_root, ext)
    if not paths:
        raise MissingFileError(f"image list {image_list} names no image")
    # Every image is checked before training, so a wrong path does not cost a training run.
    for what, listed in (("hand labels", [p for p, _ in rows]), ("image list", paths)):
        missing = [p for p in listed if not os.path.isfile(p)]
        if missing:
            raise MissingFileError(f"{len(missing)} images of the {what} do not exist, e.g. {missing[0]}")
    model, held_out = train_labeller(rows, s)
    acc = held_out.accuracy
    logger.info("viewpoint labeller: held-out accuracy %.3f on %d of %d hand-labelled images", acc,
                len(held_out.truth), len(rows))
    if acc < min_accuracy and not force:
        raise LowAccuracyError(f"held-out accuracy {acc:.3f} is below --min-accuracy {min_accuracy}; "
                               f"nothing written to {output} (label more images, or pass --force)")
    labelled = label_images(model, paths, s)
    confusion = confusion_matrix(held_out.truth, held_out.predicted, s.num_viewpoints)
    confusion_file, sheet = side_files(output)
    write_confusion(confusion_file, confusion)
    contact_sheet(sheet, labelled, s.num_viewpoints, seed=s.seed)
    write_labels(output, labelled)  # last: the labels exist only with the files that show their quality
    return LabellerResult(acc, held_out, confusion, output, confusion_file, sheet)
