"""The paper's viewpoint labeller (Sec. 3.1, VehicleID): hand-label a few images, train a viewpoint
classifier (front/rear for V=2), report its held-out accuracy and confusion, and label every image with
a confidence.

Output lines are ``imgid viewpoint confidence`` (``vehicleid/viewpoints.txt``, and what
``DATASETS.VIEWPOINT.TRAIN_LABELS`` reads), ``imgid`` being the file name without extension. Beside
them: the held-out confusion matrix (``<labels>.confusion.csv``) and a contact sheet of labelled images
per predicted class with their confidence (``<labels>.contact.png``). Nothing is written when the
held-out accuracy is below the threshold, unless forced.

* :mod:`.files`: the hand-label CSV, image lists, the labels file;
* :mod:`.classifier`: the classifier, its training and labelling;
* :mod:`.report`: the confusion matrix and the contact sheet;
* :mod:`.run`: the whole step, checked before any training.
"""
from ..errors import LowAccuracyError
from .classifier import BACKBONES, HeldOut, LabellerSettings, label_images, train_labeller
from .files import CANNOT_TELL, read_image_list, read_labelled_csv, write_labels
from .run import LabellerResult, run

__all__ = ["BACKBONES", "LabellerSettings", "HeldOut", "read_labelled_csv", "read_image_list", "train_labeller",
           "label_images", "write_labels", "run", "LabellerResult", "CANNOT_TELL", "LowAccuracyError"]
