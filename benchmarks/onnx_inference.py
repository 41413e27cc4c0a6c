#!/usr/bin/env python
"""Inference throughput on CPU, ONNX Runtime vs PyTorch: the same model (exported in this run), the
same batch and the same number of threads, timed interleaved round after round (median).

    python benchmarks/onnx_inference.py                                   # the demo's model
    python benchmarks/onnx_inference.py --config-file configs/VeRi/val_r50.yml --batch 8

Weights are random unless --weights is given (throughput does not depend on their values).
"""
import argparse

import numpy as np
import torch


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", default="configs/SynthVeRi/val_mnv2.yml")
    p.add_argument("--weights", help="a checkpoint (default: random weights)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=torch.get_num_threads(),
                   help="threads of both runtimes (1 on a machine shared with other jobs: spinning thread pools "
                        "on oversubscribed cores measure the other jobs, not the runtime)")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides, KEY VALUE ...")
    a = p.parse_args()
    torch.set_num_threads(a.threads)

    import onnxruntime as ort
    from fastreid.modeling import build_model

    import fastreid_val  # noqa: F401
    from fastreid_val.deploy.export import to_onnx
    from fastreid_val.deploy.model import inference_config, input_shape, load_model, preprocessing
    from fastreid_val.engine.launcher import build_config
    from fastreid_val.experiments.timing import interleaved, machine

    if a.weights:
        cfg = inference_config(a.config_file, a.weights, a.opts, device="cpu")
        model = load_model(cfg, config_file=a.config_file)
    else:
        cfg = build_config(a.config_file, a.opts + ["MODEL.DEVICE", "cpu", "MODEL.BACKBONE.PRETRAIN", "False"])
        torch.manual_seed(0)
        model = build_model(cfg).eval()
    prep = preprocessing(cfg)
    proto = to_onnx(model, prep)
    options = ort.SessionOptions()
    options.intra_op_num_threads = a.threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    h, w = input_shape(prep)
    images = torch.rand(a.batch, 3, h, w, generator=torch.Generator().manual_seed(0)) * 255
    feed = {session.get_inputs()[0].name: images.numpy()}

    def pytorch():
        with torch.inference_mode():
            return model(images.clone()).numpy()

    def onnxruntime():
        return session.run(None, feed)[0]

    diff = np.abs(pytorch() - onnxruntime()).max()
    times = interleaved({"pytorch": pytorch, "onnxruntime": onnxruntime}, rounds=a.rounds)
    name = f"{cfg.MODEL.BACKBONE.NAME} {cfg.MODEL.BACKBONE.DEPTH}"
    print(f"inference on CPU, {name}, {h}x{w}, batch {a.batch}, {a.threads} thread(s) each, median of "
          f"{a.rounds} interleaved rounds; machine: {machine()}, onnxruntime {ort.__version__}")
    for key in ("pytorch", "onnxruntime"):
        print(f"  {key:12s} {times[key] * 1000:9.1f} ms/batch {a.batch / times[key]:9.1f} images/s")
    print(f"ONNX Runtime / PyTorch throughput: {times['pytorch'] / times['onnxruntime']:.2f}x "
          f"(max |diff| of raw features {diff:.1e})")


if __name__ == "__main__":
    main()
