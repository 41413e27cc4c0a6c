"""An annotation from the command line's choices: pick the images, open the CSV, build the server."""
import os
from typing import Sequence

from ..errors import MissingFileError
from ..labeller.files import read_image_list
from .select import dataset_items, list_items, spread_sample
from .server import make_server
from .session import AnnotationSession
from .store import LabelStore

__all__ = ["pick_images", "start"]


def pick_images(dataset: str = "", images: str = "", image_root: str = "", ext: str = ".jpg", num: int = 300,
                seed: int = 0, opts: Sequence[str] = ()):
    """The images to hand-label, in order: ``num`` of the training set of the registered dataset
    ``dataset``, or of ``images`` (a folder, or a list of paths or ids), picked by :func:`spread_sample`."""
    if dataset:
        items = dataset_items(dataset, opts)
    else:
        if not os.path.exists(images):
            raise MissingFileError(f"image list {images} does not exist (a list file or a folder of images)")
        items = list_items(read_image_list(images, image_root, ext))
    if not items:
        raise MissingFileError(f"{dataset or images} has no image to label")
    return spread_sample(items, num, seed)


def start(images: Sequence[str], output: str, num_viewpoints: int = 2, host: str = "127.0.0.1", port: int = 8765,
          allow_hosts: Sequence[str] = ()):
    """Open ``output`` (refused when another annotation has it open) and bind the page's server to
    ``host:port``; requests are answered when their Host is a loopback name, ``host`` or one of
    ``allow_hosts``. Returns (session, server, url); ``server.serve_forever()`` serves it, and the caller
    closes ``session.store`` at the end."""
    store = LabelStore(output, num_viewpoints)
    try:
        session = AnnotationSession(images, store)
        server = make_server(session, host, port, allow_hosts)
    except BaseException:
        store.close()
        raise
    return session, server, server.url
