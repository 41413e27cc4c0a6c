"""Writing SynthVeRi in VeRi-776's layout, deterministically and safely under concurrent first use.

Layout: ``image_train/``, ``image_query/``, ``image_test/`` with ``PPPP_cCCC_FFFFFFFF_0.jpg``, and
``keypoint_train.txt`` / ``keypoint_test.txt`` in VeRi's 42-field annotation format, and
``attributes.txt`` (``PPPP model colour`` per identity: its look-alike group, which the reference
floors use). As in VeRi,
each test identity has its query images from one camera, and ``image_test`` holds all its images
from all cameras (the evaluator ignores same-camera matches).
"""
import fcntl
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, replace

import numpy as np
from fastreid.config import CfgNode as CN

from ...errors import InvalidConfigError

from .render import Camera, render
from .vehicles import COLOURS, MODELS, sample_vehicle, share_cues

__all__ = ["SynthSettings", "add_synthveri_config", "synth_settings", "draw_identity", "generate", "ensure_synthveri", "read_attributes", "ORIENTATION_FREQUENCIES",
           "FORMAT_VERSION"]

# Written into settings.json; a folder written by another version of the generator is regenerated.
# 3: the shared-cues setting (SynthSettings.shared_cues); with shared_cues False the files are those of 2.
FORMAT_VERSION = 3

# Orientation frequencies of the real VeRi-776 test annotation sample (1,410 lines):
# front 152, rear 113, left 9, left-front 387, left-rear 371, right 39, right-front 128, right-rear 211.
ORIENTATION_FREQUENCIES = np.array([152, 113, 9, 387, 371, 39, 128, 211], dtype=np.float64) / 1410


@dataclass(frozen=True)
class SynthSettings:
    num_train_ids: int = 200
    num_test_ids: int = 100
    images_per_id: int = 16
    num_cameras: int = 8
    cameras_per_id: int = 4
    width: int = 64
    height: int = 64
    # Vehicle models and colours in use (of 6 each): 3 x 3 = 9 look-alike groups, about 11 of the 100
    # test identities in each; chosen so that most wrong first matches of a trained baseline are
    # look-alikes (docs/STUDY.md, "The SynthVeRi benchmark").
    num_models: int = 3
    num_colours: int = 3
    seed: int = 0
    # Identity cues seen from both ends: one plate (colour and code) front and rear, and a roof item
    # seen from every direction (vehicles.share_cues). False draws front and rear independently, the
    # earlier benchmark (format 2, the same files). The default, True, was fixed by realism before any
    # run with it: VeRi-776's vehicles carry one plate number front and rear, and roof items, dents and
    # stickers are seen from both oblique ends; VAL's premise, pulling an identity's viewpoint
    # subclasses together, can only pay where such shared cues exist.
    shared_cues: bool = True

    def folder_name(self) -> str:
        """``synthveri`` for the defaults, else the settings' values joined; ``-independent-ends`` is
        appended without shared cues, so the two settings never share a folder."""
        rest = {k: v for k, v in asdict(self).items() if k != "shared_cues"}
        name = "synthveri" if replace(self, shared_cues=True) == SynthSettings() else (
            "synthveri-" + "-".join(f"{v}" for v in rest.values()))
        return name if self.shared_cues else name + "-independent-ends"


def add_synthveri_config(cfg):
    """``DATASETS.SYNTHVERI``: the generator's settings (:class:`SynthSettings`, see :func:`synth_settings`)."""
    d = SynthSettings()
    cfg.DATASETS.SYNTHVERI = CN()
    cfg.DATASETS.SYNTHVERI.NUM_TRAIN_IDS = d.num_train_ids  # training identities
    cfg.DATASETS.SYNTHVERI.NUM_TEST_IDS = d.num_test_ids  # test identities (query + gallery)
    cfg.DATASETS.SYNTHVERI.IMAGES_PER_ID = d.images_per_id  # images per identity
    cfg.DATASETS.SYNTHVERI.NUM_CAMERAS = d.num_cameras  # cameras, each with its own light, colour cast, blur, background
    cfg.DATASETS.SYNTHVERI.CAMERAS_PER_ID = d.cameras_per_id  # cameras that see each identity
    cfg.DATASETS.SYNTHVERI.NUM_MODELS = d.num_models  # vehicle models in use (of 6)
    cfg.DATASETS.SYNTHVERI.NUM_COLOURS = d.num_colours  # colours in use (of 6): models x colours look-alike groups
    cfg.DATASETS.SYNTHVERI.SIZE = [d.height, d.width]  # rendered image size [height, width]
    cfg.DATASETS.SYNTHVERI.SEED = d.seed  # generator seed: same seed and settings give identical files
    # identity cues seen from both ends: one plate front and rear (as on VeRi-776's vehicles) and a roof
    # item seen from every direction; False: front and rear drawn independently (the earlier benchmark)
    cfg.DATASETS.SYNTHVERI.SHARED_CUES = d.shared_cues
    return cfg


def synth_settings(cfg) -> "SynthSettings":
    """The :class:`SynthSettings` described by ``DATASETS.SYNTHVERI``."""
    s = cfg.DATASETS.SYNTHVERI
    return SynthSettings(num_train_ids=s.NUM_TRAIN_IDS, num_test_ids=s.NUM_TEST_IDS, images_per_id=s.IMAGES_PER_ID,
                         num_cameras=s.NUM_CAMERAS, cameras_per_id=s.CAMERAS_PER_ID, num_models=s.NUM_MODELS,
                         num_colours=s.NUM_COLOURS, height=s.SIZE[0], width=s.SIZE[1], seed=s.SEED,
                         shared_cues=bool(s.SHARED_CUES))


def _cameras(settings, rng):
    cams = []
    for _ in range(settings.num_cameras):
        cams.append(Camera(
            background=tuple(int(x) for x in rng.integers(60, 200, 3)),
            gain=float(rng.uniform(0.7, 1.2)),
            cast=tuple(float(x) for x in rng.uniform(0.9, 1.1, 3)),
            blur=float(rng.uniform(0.0, 1.0)),
            scale=float(rng.uniform(0.75, 1.0)),
            occlusion=float(rng.uniform(0.0, 0.3)),
        ))
    return cams


def _line(split, name, points, orientation):
    coords = " ".join(f"{x} {y}" for x, y in points)
    return f"VeRi/{split}/{name} {coords} {orientation}\n"


def draw_identity(settings: SynthSettings, pid: int):
    """Identity ``pid``'s vehicle: ``(rng, model, colour, Vehicle)``, ``model`` and ``colour`` indices into
    the models and colours in use, ``rng`` the identity's stream, which goes on to draw its images."""
    models = list(range(min(settings.num_models, len(MODELS))))
    colours = COLOURS[: settings.num_colours]
    rng = np.random.default_rng([settings.seed, pid])
    model, colour = int(rng.integers(len(models))), int(rng.integers(len(colours)))
    car = sample_vehicle(rng, models[model], colours[colour])
    if settings.shared_cues:  # from a stream of its own: everything else is as without shared cues
        car = share_cues(car, np.random.default_rng([settings.seed, pid, 1]))
    return rng, model, colour, car


def generate(out_dir: str, settings: SynthSettings) -> None:
    """Write the dataset into ``out_dir`` (created). Same settings -> identical bytes."""
    if min(settings.num_train_ids, settings.num_test_ids, settings.images_per_id, settings.num_cameras) < 1:
        raise InvalidConfigError(f"SynthVeRi settings must be positive: {settings}")
    master = np.random.default_rng(settings.seed)
    cameras = _cameras(settings, master)
    models = list(range(min(settings.num_models, len(MODELS))))
    for d in ("image_train", "image_query", "image_test"):
        os.makedirs(os.path.join(out_dir, d), exist_ok=True)
    ann = {"train": [], "test": []}
    attributes = []
    total = settings.num_train_ids + settings.num_test_ids
    for pid in range(1, total + 1):
        rng, model, colour, car = draw_identity(settings, pid)
        attributes.append(f"{pid:04d} {MODELS[models[model]][0]} {colour}\n")
        cams = rng.choice(settings.num_cameras, size=min(settings.cameras_per_id, settings.num_cameras), replace=False)
        # A camera sees passing vehicles mostly from one orientation.
        cam_orientation = {int(c): int(rng.choice(8, p=ORIENTATION_FREQUENCIES)) for c in cams}
        is_train = pid <= settings.num_train_ids
        query_cam = int(cams[0])
        for k in range(settings.images_per_id):
            cam = int(cams[k % len(cams)])
            orientation = cam_orientation[cam] if rng.random() < 0.8 else int(rng.choice(8, p=ORIENTATION_FREQUENCIES))
            img, points = render(car, orientation, cameras[cam], rng, (settings.width, settings.height))
            name = f"{pid:04d}_c{cam + 1:03d}_{k * 1000 + cam:08d}_0.jpg"
            if is_train:
                folders = ["image_train"]
            else:
                folders = ["image_test"] + (["image_query"] if cam == query_cam else [])
            for folder in folders:
                img.save(os.path.join(out_dir, folder, name), quality=92)
            split = "train" if is_train else "test"
            ann[split].append(_line("image_train" if is_train else "image_test", name, points, orientation))
    for split, lines in ann.items():
        with open(os.path.join(out_dir, f"keypoint_{split}.txt"), "w") as f:
            f.writelines(lines)
    with open(os.path.join(out_dir, "attributes.txt"), "w") as f:
        f.writelines(attributes)
    with open(os.path.join(out_dir, "settings.json"), "w") as f:  # written last: marks a complete folder
        json.dump(_marker(settings), f, indent=1)


def _marker(settings: SynthSettings) -> dict:
    return {**asdict(settings), "format_version": FORMAT_VERSION}


def _is_current(folder: str, settings: SynthSettings) -> bool:
    try:
        with open(os.path.join(folder, "settings.json")) as f:
            return json.load(f) == _marker(settings)
    except (OSError, ValueError):
        return False


def read_attributes(folder: str) -> dict:
    """{identity (int): "model/colour"} from ``attributes.txt``: each identity's look-alike group."""
    groups = {}
    with open(os.path.join(folder, "attributes.txt")) as f:
        for line in f:
            pid, model, colour = line.split()
            groups[int(pid)] = f"{model}/{colour}"
    return groups


def ensure_synthveri(root: str, settings: SynthSettings = SynthSettings()) -> str:
    """Return ``<root>/<folder>``, generating it on first use.

    Two processes starting at once: a file lock serialises them, the data is written into a temporary
    folder and renamed into place, so a reader never sees a half-written dataset.
    """
    os.makedirs(root, exist_ok=True)
    target = os.path.join(root, settings.folder_name())
    if _is_current(target, settings):
        return target
    with open(os.path.join(root, ".synthveri.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if _is_current(target, settings):
                return target
            if os.path.exists(target):  # an interrupted attempt, or written by another generator version
                shutil.rmtree(target)
            tmp = tempfile.mkdtemp(prefix=".synthveri-tmp-", dir=root)
            try:
                generate(tmp, settings)
                os.rename(tmp, target)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return target
