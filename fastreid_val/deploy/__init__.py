"""From a trained model to a working search: ONNX export checked with ONNX Runtime (``export``), and a
FAISS index of a gallery queried with a PyTorch checkpoint or the exported file (``index``, ``search``).

``model`` builds the inference model and says what it expects; ``images`` lists and reads images;
``embedder`` turns images into features with either runtime. Used by ``tools/export_onnx.py`` and
``tools/search.py``.
"""
