"""SynthVeRi: a procedurally rendered vehicle ReID dataset in VeRi-776's layout."""
from . import dataset as _dataset  # noqa: F401  (only registration)
from .dataset import SynthVeRi
from .generate import SynthSettings, ensure_synthveri, generate

__all__ = ["SynthVeRi", "SynthSettings", "ensure_synthveri", "generate"]
