"""What is known of each gallery image besides its pixels: the camera that took it, when (optional), and
its track or identity (optional), and the filters a query puts on them.

Sources, in the order they are tried for each image:

* ``--metadata FILE.csv``: ``path,camera,timestamp[,track]`` rows (a header line ``path,...`` is
  optional; paths relative to the CSV's folder; timestamp ISO-8601 or epoch seconds, may be empty);
* VERI-Wild's ``train_test_split/vehicle_info.txt`` (``vid/imgid;camera;YYYY-MM-DD hh:mm:ss;...``), given
  as ``--metadata`` or found beside a gallery under ``VERI-Wild/images/``;
* VeRi-776 / SynthVeRi file names ``0001_c001_00016450_0.jpg``: identity ``0001`` (the track) and camera
  ``c001``. The third field is a frame number of that camera, not a clock time: no timestamp.

Times are seconds since the epoch (float); a time without a zone (VERI-Wild's) is read as UTC.
"""
import csv
import math
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional

from ..errors import MetadataError

__all__ = ["ImageMeta", "Filter", "parse_time", "name_metadata", "read_metadata", "gallery_metadata"]

_VERI_NAME = re.compile(r"^(\d+)_(c\d+)_")
VEHICLE_INFO_HEADER = "id/image;"


@dataclass(frozen=True)
class ImageMeta:
    camera: Optional[str] = None
    timestamp: Optional[float] = None
    track: Optional[str] = None


@dataclass(frozen=True)
class Filter:
    """Which gallery rows a query may return; the conditions are ANDed. An image without a camera passes
    ``exclude_camera`` and fails ``cameras``; one without a time fails ``since``/``until``."""
    exclude_camera: Optional[str] = None  # the query's camera (--exclude-same-camera)
    cameras: Optional[frozenset] = None   # --cameras c001,c005
    since: Optional[float] = None         # --since (inclusive)
    until: Optional[float] = None         # --until (inclusive)

    @property
    def empty(self):
        return self.exclude_camera is None and self.cameras is None and self.since is None and self.until is None

    def describe(self):
        parts = [f"camera != {self.exclude_camera}"] if self.exclude_camera is not None else []
        parts += [f"camera in {','.join(sorted(self.cameras))}"] if self.cameras is not None else []
        parts += [f"time >= {self.since:g}"] if self.since is not None else []
        parts += [f"time <= {self.until:g}"] if self.until is not None else []
        return " and ".join(parts) or "none"


def parse_time(text, where):
    """Seconds since the epoch from ISO-8601 (``2018-03-11T10:46:23``, a space for ``T``, an optional
    zone; none: UTC) or a number of seconds. ``where`` names the input in the message."""
    text = text.strip()
    try:
        value = float(text)
        if math.isfinite(value):
            return value
    except ValueError:
        pass
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise MetadataError(f"{where}: timestamp {text!r} does not parse: give ISO-8601 (2018-03-11T10:46:23) "
                            "or seconds since the epoch") from None
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()


def name_metadata(path):
    """Camera and identity from a VeRi-style file name, else an empty :class:`ImageMeta`."""
    m = _VERI_NAME.match(os.path.basename(path))
    return ImageMeta(camera=m.group(2), track=m.group(1)) if m else ImageMeta()


def read_metadata(path, gallery):
    """{image path: ImageMeta} from ``path`` (a CSV or VERI-Wild's vehicle_info.txt) for the images of
    ``gallery`` (absolute paths). A row naming an image outside the gallery, a bad time, a row without
    a camera stop with the file and line."""
    if not os.path.isfile(path):
        raise MetadataError(f"--metadata {path} does not exist: give a CSV (path,camera,timestamp[,track]) or "
                            "VERI-Wild's vehicle_info.txt")
    try:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise MetadataError(f"--metadata {path} cannot be read ({e})") from None
    if text.startswith(VEHICLE_INFO_HEADER):
        return _vehicle_info(path, text, gallery)
    folder, members, out = os.path.dirname(os.path.abspath(path)), set(gallery), {}
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or (number == 1 and row[0].strip().lower() == "path"):
            continue
        if len(row) not in (3, 4) or not row[1].strip():
            raise MetadataError(f"{path}:{number}: expected path,camera,timestamp[,track] with a camera, got {row}")
        image = os.path.abspath(os.path.join(folder, row[0].strip()))
        if image not in members:
            raise MetadataError(f"{path}:{number}: {row[0].strip()} is not an image of the gallery ({image})")
        stamp = parse_time(row[2], f"{path}:{number}") if row[2].strip() else None
        track = row[3].strip() or None if len(row) == 4 else None
        out[image] = ImageMeta(row[1].strip(), stamp, track)
    return out


def _vehicle_info(path, text, gallery):
    """VERI-Wild: ``<vid>/<imgid>;<camera>;<time>;model;type;color``, images at ``images/<vid>/<imgid>.jpg``."""
    index = {}
    for image in gallery:
        parts = image.replace(os.sep, "/").rsplit("/", 2)
        if len(parts) == 3:
            index[f"{parts[1]}/{os.path.splitext(parts[2])[0]}"] = image
    out = {}
    for number, line in enumerate(text.splitlines()[1:], start=2):
        fields = line.split(";")
        if not line.strip():
            continue
        if len(fields) < 3:
            raise MetadataError(f"{path}:{number}: expected vid/imgid;camera;time;..., got {line!r}")
        image = index.get(fields[0].strip())
        if image is not None:
            out[image] = ImageMeta(fields[1].strip(), parse_time(fields[2], f"{path}:{number}"),
                                   fields[0].split("/")[0].strip())
    return out


def _veriwild_info(gallery):
    """vehicle_info.txt of the VERI-Wild tree the gallery lies in (``VERI-Wild/images/<vid>/<imgid>.jpg``)."""
    first = os.path.dirname(os.path.dirname(gallery[0]))  # .../images
    info = os.path.join(os.path.dirname(first), "train_test_split", "vehicle_info.txt")
    return info if os.path.basename(first) == "images" and os.path.isfile(info) else None


def gallery_metadata(gallery, metadata_file=None):
    """[ImageMeta] for each image of ``gallery``: ``metadata_file`` (or the VERI-Wild tree's
    vehicle_info.txt) where it names the image, else the VeRi-style name."""
    source = metadata_file or (_veriwild_info(gallery) if gallery else None)
    listed = read_metadata(source, gallery) if source else {}
    return [listed.get(p) or name_metadata(p) for p in gallery]
