"""S14, S15: upstream warnings that a user of FastReID 1.4.0 cannot act on, filtered where they arise.

Each filter is as narrow as the warning: one message from one upstream module. Every other warning,
the project's own included, is shown as before. See :mod:`fastreid_val.compat`.
"""
import logging
import warnings

__all__ = ["filter_upstream_noise", "CUDA_RUNTIME_NOTICE"]

CUDA_RUNTIME_NOTICE = "No CUDA runtime is found"


class _DropMessage(logging.Filter):
    """Drops the records of one logger whose message starts with ``prefix``."""

    def __init__(self, prefix):
        super().__init__()
        self.prefix = prefix

    def filter(self, record):
        return not str(record.msg).startswith(self.prefix)


def filter_upstream_noise() -> None:
    # S14: ``to_tensor`` (fastreid/data/transforms/functional.py:46) builds every image tensor through
    # ``torch.ByteStorage.from_buffer``; torch >= 2 warns "TypedStorage is deprecated" once in each
    # process that does, i.e. once per training run and once per data-loader worker. The call is
    # upstream's; nothing in a config or a command line avoids it.
    warnings.filterwarnings("ignore", message="TypedStorage is deprecated", category=UserWarning,
                            module=r"fastreid\.data\.transforms\.functional")
    # S15: FastReID's environment table (fastreid/utils/collect_env.py:69, logged by ``default_setup``)
    # imports ``torch.utils.cpp_extension`` to read CUDA_HOME; on a machine with a CUDA toolkit folder
    # but no GPU runtime, torch logs "No CUDA runtime is found, using CUDA_HOME=..." at that import
    # (torch/utils/cpp_extension.py:183). Nothing in the plugin compiles CUDA code; the table itself
    # still says "GPU available False".
    cpp_logger = logging.getLogger("torch.utils.cpp_extension")
    if not any(isinstance(f, _DropMessage) for f in cpp_logger.filters):
        cpp_logger.addFilter(_DropMessage(CUDA_RUNTIME_NOTICE))
