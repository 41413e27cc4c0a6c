#!/usr/bin/env python
"""Search an indexed gallery in the browser: pick an indexed image or upload one, set the filters, see the
ranked results as thumbnails with their camera, time and distance.

    python tools/search_server.py --index output/search/synthveri \\
        --weights output/synthveri/val_mnv2/model_final.onnx
    python tools/search_server.py --index output/search/synthveri --config-file configs/SynthVeRi/val_mnv2.yml \\
        --weights output/synthveri/val_mnv2/model_final.pth

then open the address it prints. The index is one that tools/search.py --gallery built, with the same
model (another one is refused). The page's JSON API (POST /api/search and the others) is described in
docs/DEPLOY.md. It listens on 127.0.0.1 unless --host says otherwise, and answers only requests whose Host
is this machine's loopback name, --host or an --allow-host name. A bad input ends with one line on stderr
and exit status 2.
"""
import argparse
import sys

import fastreid_val  # noqa: F401  (shims and registration)
from fastreid_val.engine.user_modules import add_import_argument, import_user_modules
from fastreid_val.errors import UserInputError, one_line
from fastreid_val.search_page import start


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--index", required=True, help="index folder (or milvus://HOST:PORT/COLLECTION) built by "
                                                  "tools/search.py --gallery")
    p.add_argument("--weights", required=True, help="checkpoint (.pth, with --config-file) or exported .onnx file")
    p.add_argument("--config-file", default="", help="the config the checkpoint was trained with")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    p.add_argument("--port", type=int, default=8766, help="port (0: any free one)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="a name or address of this machine that browsers may use besides 127.0.0.1 and localhost "
                        "(with --host 0.0.0.0); repeatable. Requests naming any other host are refused")
    p.add_argument("--max-upload-mb", type=float, default=8.0, help="largest uploaded image, in MiB")
    add_import_argument(p)
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides, KEY VALUE ...")
    a = p.parse_args(argv)
    if not 0 < a.max_upload_mb <= 1024:
        p.error(f"--max-upload-mb {a.max_upload_mb:g}: give a size in 0..1024")
    try:
        import_user_modules(a.imports)
        service, server, url = start(a.index, a.weights, a.config_file, a.opts, a.host, a.port, a.allow_host,
                                     int(a.max_upload_mb * 1024 * 1024))
    except UserInputError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    s = service.summary()
    print(f"index {a.index}: {s['images']} images, {len(s['cameras'])} cameras, {s['kind']}; model {s['model']}",
          flush=True)
    print(f"open {url} in a browser; Ctrl-C stops", flush=True)
    try:
        server.serve_forever()  # returns on Ctrl-C or SIGTERM, once the server has shut down
    finally:
        server.server_close()
        service.backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
