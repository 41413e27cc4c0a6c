"""The command line of ``tools/train_net.py``, also run as ``python -m fastreid_val.engine.cli``
(by ``tools/compare.py`` and ``make demo``, so that they do not depend on a checkout's ``tools/``).

A bad input (config key, dataset, annotation, checkpoint, output folder, non-finite loss) ends with
one line on stderr and exit status 2.
"""
import sys

import fastreid_val  # noqa: F401  (shims and registration)
from fastreid.engine import default_argument_parser, launch

from ..errors import UserInputError, one_line
from ..compat.engine import distributed_worker_for
from .launcher import build_config, main
from .user_modules import add_import_argument, import_user_modules

__all__ = ["cli", "argument_parser"]


def argument_parser():
    """FastReID's ``default_argument_parser`` with ``--import MODULE`` (:mod:`.user_modules`)."""
    return add_import_argument(default_argument_parser())


def cli(argv=None):
    args = argument_parser().parse_args(argv)
    try:
        import_user_modules(args.imports)  # before the config: it may name the user's dataset
        # the processes' backend (NCCL on GPUs, gloo otherwise) follows MODEL.DEVICE, not the machine
        with distributed_worker_for(build_config(args.config_file, args.opts).MODEL.DEVICE):
            launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
                   dist_url=args.dist_url, args=(args,))
    except UserInputError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    cli()
