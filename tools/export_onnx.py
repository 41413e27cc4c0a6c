#!/usr/bin/env python
"""Export a trained model to ONNX and check it with ONNX Runtime against PyTorch on real images.

    python tools/export_onnx.py --config-file configs/SynthVeRi/val_mnv2.yml \\
        --weights output/synthveri/val_mnv2/model_final.pth          # -> output/synthveri/val_mnv2/model_final.onnx

The graph takes ``images`` float32 [batch, 3, H, W], RGB in 0..255, and returns the embedding; the
preprocessing is written into the file's metadata. The file is written only when ONNX Runtime's
L2-normalised features are within --tolerance of PyTorch's (exit 1 otherwise); a bad input ends
with one line on stderr and exit status 2.
"""
import argparse
import os
import sys

import fastreid_val  # noqa: F401  (shims and registration)
from fastreid_val.deploy.export import DEFAULT_TOLERANCE, export_model
from fastreid_val.engine.user_modules import add_import_argument, import_user_modules
from fastreid_val.errors import ExportCheckError, UserInputError, one_line


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True, help="the config the checkpoint was trained with")
    p.add_argument("--weights", required=True, help="checkpoint (.pth)")
    p.add_argument("--output", help="ONNX file to write (default: the checkpoint's path with .onnx)")
    p.add_argument("--images", help="folder or list of images to check on (default: the config's test dataset)")
    p.add_argument("--num-images", type=int, default=32, help="images checked (evenly spread)")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help="largest |ONNX Runtime - PyTorch| allowed on L2-normalised features")
    add_import_argument(p)
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides, KEY VALUE ...")
    a = p.parse_args(argv)
    try:
        import_user_modules(a.imports)
        output, check, proto = export_model(a.config_file, a.weights, a.output, a.images, a.num_images, a.opts,
                                            a.tolerance)
    except UserInputError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        sys.exit(2)
    except ExportCheckError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        sys.exit(1)
    shape = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    print(f"exported {output} ({os.path.getsize(output) / 2**20:.1f} MiB, opset {proto.opset_import[0].version}, "
          f"{len(proto.graph.node)} nodes, ai.onnx operators only): images {shape(proto.graph.input[0])} RGB 0..255 "
          f"-> embedding {shape(proto.graph.output[0])}")
    print(f"check: ONNX Runtime vs PyTorch on {check['images']} images (batches of {sorted(set(check['batch_sizes']))}): "
          f"max |diff| of L2-normalised features {check['max_abs_diff']:.2e} <= tolerance {check['tolerance']:g} "
          f"(raw features: {check['max_abs_diff_raw']:.2e}): OK")


if __name__ == "__main__":
    main()
