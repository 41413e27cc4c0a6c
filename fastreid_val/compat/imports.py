"""S1, S2: module-level names that FastReID imports, restored before FastReID is imported.

See :mod:`fastreid_val.compat` for what each shim repairs.
"""
import collections
import collections.abc
import importlib
import sys
import types

import torch


def apply_pre_import_shims() -> None:
    """S1, S2: names that FastReID imports at module level."""
    # S1
    for name in ("Mapping", "MutableMapping", "Sequence", "Iterable"):
        if not hasattr(collections, name):
            setattr(collections, name, getattr(collections.abc, name))
    # S2
    if "torch._six" not in sys.modules:
        try:
            importlib.import_module("torch._six")  # present on torch < 2.0
        except ImportError:
            six = types.ModuleType("torch._six")
            six.string_classes = (str, bytes)
            six.int_classes = (int,)
            six.inf = float("inf")
            sys.modules["torch._six"] = six
            torch._six = six
