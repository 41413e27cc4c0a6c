"""fastreid-val: the Viewpoint-Aware Loss (Chen et al., "Partition and Reunion", ICIP) for FastReID.

Importing this package applies the FastReID 1.4.0 compatibility shims (``fastreid_val.compat``) and
registers the plugin's dataset, head and meta-architecture in FastReID's registries.
"""
from . import compat

compat.apply_pre_import_shims()

import fastreid.data  # noqa: E402,F401  (needs the shims above)
import fastreid.engine  # noqa: E402,F401
import fastreid.evaluation  # noqa: E402,F401

compat.apply()

from . import data as _data  # noqa: E402,F401  (only registration)
from . import modeling as _modeling  # noqa: E402,F401  (only registration)
from .config import add_val_config  # noqa: E402

__version__ = "0.1.0"
__all__ = ["add_val_config"]
