"""ImageNet weights for FastReID's ResNet backbones: found in FastReID's cache, or downloaded once.

Stock FastReID (``fastreid/modeling/backbones/resnet.py``, ``init_pretrained_weights``), with
``MODEL.BACKBONE.PRETRAIN`` on and an empty ``PRETRAIN_PATH``, downloads the file named in its
``model_urls`` (``resnet50-19c8e357.pth`` for ``50x``, ``resnet50_ibn_a-d9d0bb7b.pth`` for
``ibn_50x`` ...) into ``$TORCH_HOME/checkpoints/`` under the URL's file name, on global rank 0 only,
then loads it with ``strict=False``. Here, for ``build_resnet_backbone``:

* **Cache.** The same folder and file name, so a file fetched by FastReID before is used as it is;
  torchvision's cache (``$TORCH_HOME/hub/checkpoints/``) serves too when it holds the *same file name*
  (the same bytes PyTorch's model store serves; torchvision's newer re-saved files have other names
  and are not looked for).
* **Download.** Otherwise the file is downloaded once per machine: the first process takes a lock
  beside the file, the others on that machine wait for it and then read the file (upstream downloads
  on global rank 0 only, so the other machines of a run without a shared cache never get it). The
  bytes go to a temporary file in the cache folder, are checked against the announced length and
  against the SHA-256 prefix in the file name (PyTorch's naming convention, ``name-<sha256[:8]>.pth``),
  and only then renamed into place: an interrupted, truncated or corrupted download leaves nothing in
  the cache. The files FastReID fetches from elsewhere than PyTorch's model store (IBN-Net's releases,
  ``UNVERIFIED_NAMES``) carry a name of that form too, but nothing guarantees that it is their hash (their
  own loader does not check it): for them a mismatch is logged, and the bytes must be a file
  ``torch.load`` reads before they are kept. ``FASTREID_VAL_WEIGHTS_MIRROR``
  (a base URL, e.g. ``http://127.0.0.1:8000/``) replaces the folder of every URL by that of a mirror.
* **Offline.** A connection that fails or stalls for ``TIMEOUT_S`` stops with one line: the URL, the
  exact cache path to put the file at, and ``MODEL.BACKBONE.PRETRAIN_PATH`` as the alternative.
* **Every backbone tensor is loaded, or the run stops.** FastReID loads with ``strict=False`` and
  logs what it skipped (an ``R50-ibn`` config given a plain ResNet-50 file trains with random IBN
  layers). Before upstream loads the file, its keys and shapes are checked against the backbone: only
  the ImageNet classifier (``fc.*``) may be in the file and not the backbone, and only the non-local
  blocks (``NL_*``, ``WITH_NL``: new layers, not in any ImageNet file) in the backbone and not the
  file; both are logged. ``PRETRAIN_PATH`` files are checked the same way.
"""
import contextlib
import fcntl
import hashlib
import logging
import os
import re
import sys
import tempfile
import urllib.error
import urllib.request

from fastreid.modeling.backbones import build_backbone
from fastreid.modeling.backbones.resnet import model_urls

from ..errors import (CheckpointMismatchError, InvalidConfigError, MissingFileError, PretrainedWeightsError,
                      UnsafeModelFileError)
from ..weights_file import load_weights_file

logger = logging.getLogger(__name__)

__all__ = ["TIMEOUT_S", "MIRROR_ENV", "UNVERIFIED_NAMES", "fastreid_cache_dir", "weights_url", "cached_weights", "download",
           "check_backbone_weights", "resolve_imagenet_weights"]

TIMEOUT_S = 15  # seconds without an answer (connect or read) before a download is given up
MIRROR_ENV = "FASTREID_VAL_WEIGHTS_MIRROR"
# Keys a backbone may have that no ImageNet file has (WITH_NL's non-local blocks, initialised by FastReID).
NEW_LAYER_PREFIXES = ("NL_",)
# Keys an ImageNet file has that a ReID backbone drops (the 1000-class classifier).
DROPPED_PREFIXES = ("fc.",)
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")
# PyTorch's model store names its files by their SHA-256 prefix (torch.hub checks it); the other files
# in FastReID's model_urls are not known to follow that convention.
_PYTORCH_STORE = "https://download.pytorch.org/"
UNVERIFIED_NAMES = frozenset(u.rsplit("/", 1)[1] for u in model_urls.values() if not u.startswith(_PYTORCH_STORE))


def _torch_home():
    # The folder FastReID's init_pretrained_weights uses (and torch.hub).
    return os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch")))


def fastreid_cache_dir():
    return os.path.join(_torch_home(), "checkpoints")


def _backbone_key(b):
    # As build_resnet_backbone names its weights (resnet.py): [se_][ibn_]<depth>.
    key = b.DEPTH
    if b.WITH_IBN:
        key = "ibn_" + key
    if b.WITH_SE:
        key = "se_" + key
    return key


def weights_url(cfg):
    """The URL FastReID fetches for this backbone (after ``FASTREID_VAL_WEIGHTS_MIRROR``), or an error."""
    b = cfg.MODEL.BACKBONE
    key = _backbone_key(b)
    if key not in model_urls:
        raise InvalidConfigError(
            f"FastReID publishes no ImageNet weights for {b.NAME} {key}: give a local file with "
            "MODEL.BACKBONE.PRETRAIN_PATH, or MODEL.BACKBONE.PRETRAIN False to train from scratch.")
    url = model_urls[key]
    mirror = os.getenv(MIRROR_ENV)
    if mirror:
        url = mirror.rstrip("/") + "/" + url.rsplit("/", 1)[1]
    return url


def cached_weights(url, progress=True):
    """Local path of the file at ``url``: from FastReID's or torchvision's cache, else downloaded into
    FastReID's (once per machine, under a lock)."""
    name = url.rsplit("/", 1)[1]
    path = os.path.join(fastreid_cache_dir(), name)
    for candidate in (path, os.path.join(_torch_home(), "hub", "checkpoints", name)):
        if os.path.isfile(candidate):
            return candidate
    try:
        os.makedirs(fastreid_cache_dir(), exist_ok=True)
        lock = open(path + ".lock", "a")
    except OSError as e:
        raise MissingFileError(f"cannot write ImageNet weights to {fastreid_cache_dir()} ({e.strerror or e}): "
                               f"set TORCH_HOME to a writable folder, or MODEL.BACKBONE.PRETRAIN_PATH.") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process of this machine may be downloading it
        try:
            if not os.path.isfile(path):
                download(url, path, progress)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return path


def download(url, path, progress=True):
    """Download ``url`` to ``path`` atomically, checking its length and the SHA-256 prefix in its name when it
    has one (for ``UNVERIFIED_NAMES``: a mismatch is logged, and the file must load with ``torch.load``)."""
    logger.info("Downloading ImageNet weights %s to %s", url, path)
    expected = _HASH_IN_NAME.search(path)
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".download-", suffix=".part")
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, _open(url, path) as response:
            total = int(response.headers.get("Content-Length") or 0)
            with _progress_bar(total, os.path.basename(path), progress) as bar:
                while True:
                    try:
                        chunk = response.read(1 << 20)
                    except OSError as e:  # a read that stalls past the timeout, or a dropped connection
                        raise _offline(url, path, e) from None
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        got = os.path.getsize(tmp)
        if total and got != total:
            raise PretrainedWeightsError(f"download of {url} stopped after {got} of {total} bytes; nothing was "
                                         f"kept in {folder}: run again, or put the file at {path}.")
        if expected and not digest.hexdigest().startswith(expected.group(1)) and \
                os.path.basename(path) in UNVERIFIED_NAMES:
            logger.warning("%s: SHA-256 %s... does not start with %s; this file's name is not known to carry its "
                           "hash, so it is kept if it loads", url, digest.hexdigest()[:12], expected.group(1))
            _check_loads(tmp, url, path)
        elif expected and not digest.hexdigest().startswith(expected.group(1)):
            raise PretrainedWeightsError(
                f"{url}: the downloaded file's SHA-256 {digest.hexdigest()[:12]}... does not start with "
                f"{expected.group(1)} (its name): corrupted, nothing kept. Run again, or put an intact file at {path}.")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _check_loads(tmp, url, path):
    try:
        load_weights_file(tmp, "downloaded file")
    except (CheckpointMismatchError, UnsafeModelFileError) as e:  # corrupted, truncated, an HTML error page, pickled code
        raise PretrainedWeightsError(
            f"{url}: the downloaded file is not a weights file torch.load reads ({type(e).__name__}); nothing "
            f"kept. Run again, or put an intact file at {path}.") from None


@contextlib.contextmanager
def _open(url, path):
    try:
        response = urllib.request.urlopen(url, timeout=TIMEOUT_S)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise _offline(url, path, e) from None
    with response:
        yield response


def _offline(url, path, error):
    reason = getattr(error, "reason", None) or error
    return MissingFileError(
        f"cannot download ImageNet weights {url} ({reason}): put that file at {path}, "
        f"or give a local file with MODEL.BACKBONE.PRETRAIN_PATH, or MODEL.BACKBONE.PRETRAIN False to train from scratch.")


@contextlib.contextmanager
def _progress_bar(total, name, enabled):
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional: no bar
        tqdm = None
    if not enabled or tqdm is None:
        yield _NoBar()
        return
    with tqdm(total=total or None, unit="B", unit_scale=True, unit_divisor=1024, desc=name, file=sys.stderr,
              disable=None) as bar:
        yield bar


class _NoBar:
    def update(self, n):
        pass


def check_backbone_weights(cfg, path):
    """Raise :class:`PretrainedWeightsError` unless ``path`` fills every tensor of the backbone that
    ``cfg`` builds (``fc.*`` in the file and ``NL_*`` in the backbone excepted, and logged)."""
    try:
        state = load_weights_file(path, "ImageNet weights")  # a file that would run code stops here, in one line
    except CheckpointMismatchError as e:  # truncated, not a tensor file
        raise PretrainedWeightsError(f"{e}: delete it to download it again, or give another file.") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    scratch = cfg.clone()
    scratch.defrost()
    scratch.MODEL.BACKBONE.PRETRAIN = False
    own = {k: v.shape for k, v in build_backbone(scratch).state_dict().items() if not k.endswith("num_batches_tracked")}
    missing = sorted(k for k in own if k not in state and not k.startswith(NEW_LAYER_PREFIXES))
    unexpected = sorted(k for k in state if k not in own and not k.startswith(DROPPED_PREFIXES)
                        and not k.endswith("num_batches_tracked"))
    misshapen = sorted(k for k in own if k in state and tuple(state[k].shape) != tuple(own[k]))
    if missing or unexpected or misshapen:
        b = cfg.MODEL.BACKBONE
        raise PretrainedWeightsError(
            f"ImageNet weights {path} do not fit {b.NAME} {_backbone_key(b)}: {len(missing)} backbone tensors "
            f"missing {missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}, {len(misshapen)} of another "
            f"shape {misshapen[:3]} (another depth, or IBN weights for a plain ResNet or the reverse?).")
    new = sorted({k.split(".", 1)[0] for k in own if k not in state})
    logger.info("ImageNet weights %s fill every backbone tensor%s; the file's %s is dropped.", path,
                f" except the new layers {', '.join(new)}" if new else "", "classifier (fc)")


def resolve_imagenet_weights(cfg):
    """For a ResNet backbone with ``PRETRAIN`` on: set ``PRETRAIN_PATH`` (``cfg`` not frozen) to the
    checked local file, given, cached or downloaded, which FastReID's builder then loads. The run's
    ``config.yaml`` then names the file it started from."""
    b = cfg.MODEL.BACKBONE
    if not b.PRETRAIN or b.NAME != "build_resnet_backbone":
        return cfg
    if b.PRETRAIN_PATH:
        if not os.path.isfile(b.PRETRAIN_PATH):
            raise MissingFileError(f"MODEL.BACKBONE.PRETRAIN_PATH {b.PRETRAIN_PATH} does not exist: give a local "
                                   "ImageNet weights file, or leave it empty to use FastReID's download.")
        path = b.PRETRAIN_PATH
    else:
        path = cached_weights(weights_url(cfg))
    check_backbone_weights(cfg, path)
    b.PRETRAIN_PATH = path
    return cfg
