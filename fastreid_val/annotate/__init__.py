"""Hand labels of viewpoints in the browser (``tools/annotate_viewpoints.py``): the paper's manual step,
"we annotate 300 images and train a binary classifier" (Sec. 3.1).

* :mod:`.select`: which images, spread over identities and cameras, seeded;
* :mod:`.store`: the hand-label CSV that ``tools/label_viewpoints.py --labelled`` reads, written atomically
  after every answer by one writer at a time;
* :mod:`.session`: the picked images, the answers, the images that cannot be read;
* :mod:`.server`: the standard library's HTTP server in front of it, and ``page.html``, the page.
"""
from .app import pick_images, start
from .select import spread_sample

__all__ = ["pick_images", "start", "spread_sample"]
