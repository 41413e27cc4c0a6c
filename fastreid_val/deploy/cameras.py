"""The camera a model with camera side information (SIE) is given for an image that search embeds.

A model trained with SIE (``MODEL.SIE.CAMERAS`` > 0, the transformer recipes) adds a learned vector per
camera to its input, indexed by the camera numbers of its training set: the dataset's own numbers
(:func:`fastreid_val.data.common.camera_number`), which are

* VeRi-776 and SynthVeRi: the ``c<NNN>`` of the file name less one (``c001`` is 0), as FastReID's ``VeRi``
  reads it;
* VERI-Wild: the camera number of ``vehicle_info.txt`` as it is (``23`` is 23), as FastReID's ``VeRiWild``.

Search knows an image's camera as a name (:class:`~.metadata.ImageMeta`'s ``camera``: ``c005`` from a
VeRi-style name or a CSV, ``23`` from VERI-Wild), so the same reading gives the model's number:
``c<digits>`` is the number less one, plain digits are the number. Any other name, no camera, or a number
outside the model's ``0..CAMERAS-1`` (a camera the model was never trained on) is :data:`UNKNOWN_CAMERA`.

The default for an image whose camera is not known (an uploaded photo, a query without
``--query-camera``) is :data:`UNKNOWN_CAMERA`, -1, which the model embeds with the mean of its cameras'
vectors (:meth:`~fastreid_val.modeling.vit.SideInformationViT.side_information`): the expected side
information over the cameras it knows. Any one camera instead (say 0) would pull every such query towards
the gallery images of that camera.
"""
import logging
import re

__all__ = ["UNKNOWN_CAMERA", "model_camera", "model_cameras"]

logger = logging.getLogger(__name__)

UNKNOWN_CAMERA = -1
_VERI_CAMERA = re.compile(r"^c(\d+)$")


def model_camera(camera, cameras=None):
    """The SIE camera number of the camera name ``camera`` (see the module's docstring), or -1.

    ``cameras``: the model's camera count (numbers at or past it are -1); None when not known."""
    if camera is None:
        return UNKNOWN_CAMERA
    text = str(camera).strip().lower()
    match = _VERI_CAMERA.match(text)
    if match:
        number = int(match.group(1)) - 1
    elif text.isdigit():
        number = int(text)
    else:
        return UNKNOWN_CAMERA
    if number < 0 or (cameras is not None and number >= cameras):
        return UNKNOWN_CAMERA
    return number


def model_cameras(names, cameras=None, what="gallery"):
    """[model_camera(name)] for ``names``; logs once how many named cameras the model does not know
    (they are embedded as the unknown camera, -1)."""
    numbers = [model_camera(n, cameras) for n in names]
    lost = sorted({str(n) for n, c in zip(names, numbers) if n is not None and c == UNKNOWN_CAMERA})
    if lost:
        logger.warning("%s: %d camera name(s) the model was not trained on (%s%s; it knows %s): embedded with the "
                       "mean of its cameras' vectors", what, len(lost), ", ".join(lost[:5]),
                       " ..." if len(lost) > 5 else "", f"0..{cameras - 1}" if cameras else "c<NNN> and numbers")
    return numbers
