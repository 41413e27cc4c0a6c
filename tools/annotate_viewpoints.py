#!/usr/bin/env python
"""Hand-label the viewpoints of a few hundred images in the browser, for tools/label_viewpoints.py.

    python tools/annotate_viewpoints.py --dataset VehicleIDViewpoint --output hand_labels.csv
    python tools/annotate_viewpoints.py --images my_vehicles/ --output hand_labels.csv --num 300

then open the address it prints. One image at a time; keys 1, 2 (front, rear; with --num-viewpoints 4 or
8 the names of fastreid_val/data/viewpoints.py), x (cannot tell), u (undo). Every answer is saved at
once; run the same command again to go on where it stopped.
"""
import argparse
import sys

import fastreid_val  # noqa: F401  (shims and registration)
from fastreid_val.annotate import pick_images, start
from fastreid_val.engine.user_modules import add_import_argument, import_user_modules
from fastreid_val.errors import UserInputError, one_line


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", help="a registered dataset (its training set) under $FASTREID_DATASETS")
    src.add_argument("--images", help="a folder of images, or a list (path or id per line)")
    p.add_argument("--image-root", default="", help="folder joined to ids in --images")
    p.add_argument("--ext", default=".jpg", help="extension added to ids in --images")
    p.add_argument("--opts", nargs="*", default=[], metavar="KEY VALUE", help="config overrides for --dataset")
    p.add_argument("--output", required=True, help="the hand-label CSV (path,viewpoint; -1 = cannot tell)")
    p.add_argument("--num", type=int, default=300, help="images to label (the paper labelled 300)")
    p.add_argument("--seed", type=int, default=0, help="seed of the pick (spread over identities and cameras)")
    p.add_argument("--num-viewpoints", type=int, default=2, choices=[2, 4, 8], help="V (2: front, rear)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port (0: any free one)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="a name or address of this machine that browsers may use besides 127.0.0.1 and localhost "
                        "(with --host 0.0.0.0); repeatable. Requests naming any other host are refused")
    add_import_argument(p)  # the module that registers a --dataset of your own
    a = p.parse_args(argv)
    if len(a.opts) % 2:
        p.error(f"--opts takes KEY VALUE pairs, got {len(a.opts)} words")
    try:
        import_user_modules(a.imports)
        images = pick_images(a.dataset or "", a.images or "", a.image_root, a.ext, a.num, a.seed, a.opts)
        session, server, url = start(images, a.output, a.num_viewpoints, a.host, a.port, a.allow_host)
    except UserInputError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    state = session.state()
    print(f"{state['total']} images of {a.dataset or a.images} to label, {state['done']} done so far; answers go to "
          f"{session.store.path}", flush=True)
    print(f"open {url} in a browser; Ctrl-C stops (every answer is already saved)", flush=True)
    try:
        server.serve_forever()  # returns on Ctrl-C or SIGTERM, once the server has shut down
    finally:
        server.server_close()
        session.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
