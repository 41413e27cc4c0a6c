"""A tiny indexed gallery for the search page's tests: 30 8x8 images named VeRi-style (identity i // 3,
camera c00{i % 3 + 1}), taken at 2026-01-01 00:00 + i minutes, indexed exactly (Flat) with the tiny
exported model of tests/test_search_ingest.py; then image 15 leaves the gallery (its row is a tombstone)."""
import os

from fastreid_val.deploy.embedder import OnnxEmbedder
from fastreid_val.deploy.images import list_images
from fastreid_val.deploy.search import update_index

from .test_search_ingest import make_gallery

START = 1767225600  # 2026-01-01T00:00:00Z
DELETED = 15


def build_index(folder, model):
    """(gallery folder, index folder, image names by row); row 15 is deleted."""
    gallery = make_gallery(folder / "gallery", 30, cameras=3)
    names = sorted(os.listdir(gallery))
    meta = folder / "meta.csv"
    lines = [f"gallery/{n},{n.split('_')[1]},{START + 60 * i}\n" for i, n in enumerate(names)]
    meta.write_text("path,camera,timestamp\n" + "".join(lines))
    index, embedder = str(folder / "index"), OnnxEmbedder(model)
    update_index(embedder, list_images(gallery), index, kind="exact", metadata_file=str(meta))
    os.remove(os.path.join(gallery, names[DELETED]))
    meta.write_text("path,camera,timestamp\n" + "".join(lines[:DELETED] + lines[DELETED + 1:]))
    update_index(embedder, list_images(gallery), index, kind="exact", metadata_file=str(meta))
    return gallery, index, names
