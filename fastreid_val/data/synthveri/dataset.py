"""``SynthVeRi``: the embedded dataset, read by the same code path as ``VeRiViewpoint``."""
import os

from fastreid.data.datasets import DATASET_REGISTRY

from ..veri import VeRiViewpoint
from .generate import SynthSettings, ensure_synthveri, read_attributes, synth_settings

__all__ = ["SynthVeRi"]


@DATASET_REGISTRY.register()
class SynthVeRi(VeRiViewpoint):
    """Procedurally rendered vehicles in VeRi-776's layout, generated under ``$FASTREID_DATASETS`` on first use.

    ``settings`` (a :class:`SynthSettings`) comes from ``DATASETS.SYNTHVERI`` via the loader.
    """

    dataset_name = "synthveri"
    layout_help = "synthveri/ (generated automatically)"

    @classmethod
    def config_kwargs(cls, cfg) -> dict:
        return {**super().config_kwargs(cfg), "settings": synth_settings(cfg)}

    def __init__(self, root="datasets", settings: SynthSettings = SynthSettings(), **kwargs):
        self.settings = settings
        self.dataset_dir = settings.folder_name()
        super().__init__(root=root, **kwargs)

    def prepare(self):
        ensure_synthveri(os.path.dirname(self.dataset_dir) or ".", self.settings)

    def identity_groups(self):
        """Each identity's vehicle model and colour (``attributes.txt``): identities of one group look alike."""
        return read_attributes(self.dataset_dir)
