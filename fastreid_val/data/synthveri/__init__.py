"""SynthVeRi: a procedurally rendered vehicle ReID dataset in VeRi-776's layout."""
from . import dataset as _dataset  # noqa: F401  (only registration)
from .dataset import SynthVeRi
from .generate import SynthSettings, add_synthveri_config, ensure_synthveri, generate, synth_settings

__all__ = ["SynthVeRi", "SynthSettings", "add_synthveri_config", "ensure_synthveri", "generate", "synth_settings"]
