"""The user's own registration modules, named on the command line with ``--import MODULE``.

A dataset, backbone, head or meta-architecture of one's own registers itself with FastReID's registries
when its module is imported (``@DATASET_REGISTRY.register()``). Every tool that builds datasets or models
from a config takes ``--import`` (repeatable): a module name Python can import (on ``PYTHONPATH`` or
installed), or the path of a ``.py`` file. It is a command-line flag and never a config key: a config
someone hands over holds plain values and never makes the tools run code.

A module is imported once per process: ``tools/train_net.py`` imports it before it starts, and each
process that ``--num-gpus`` starts imports it again (spawned processes begin with a fresh interpreter).
"""
import importlib
import importlib.util
import os
import sys
import traceback

from ..errors import UserModuleError

__all__ = ["add_import_argument", "import_user_modules"]

_FILES = {}  # absolute path of a .py file -> its module, so that a second import does not register twice


def add_import_argument(parser):
    """``--import MODULE`` (repeatable) on an argparse parser; the names land in ``args.imports``."""
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="a module of your own to import first, e.g. one that registers a dataset: a module "
                             "name on the Python path, or a .py file (repeatable)")
    return parser


def import_user_modules(names):
    """Import each of ``names`` (module names or ``.py`` paths) in order; returns the modules.

    A module that cannot be found, a file that does not exist and a module that raises while it is
    imported each stop with :class:`~fastreid_val.errors.UserModuleError`, one line naming the module and
    what happened (the exception, with the file and line of the user's code that raised it)."""
    return [_import_file(n) if _is_path(n) else _import_name(n) for n in names or ()]


def _is_path(name):
    return name.endswith(".py") or os.sep in name or (os.altsep and os.altsep in name)


def _import_name(name):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name is not None and (name == e.name or name.startswith(e.name + ".")):
            raise UserModuleError(f"--import {name}: no module named {e.name!r} on the Python path; give a module "
                                  "Python can import (on PYTHONPATH or installed) or the path of a .py file") from None
        raise UserModuleError(f"--import {name}: importing it raised {_described(e)}") from None
    except Exception as e:  # the user's code raised while it ran: name it, never a traceback from here
        raise UserModuleError(f"--import {name}: importing it raised {_described(e)}") from None


def _import_file(path):
    full = os.path.abspath(path)
    if full in _FILES:
        return _FILES[full]
    if not os.path.isfile(full):
        raise UserModuleError(f"--import {path}: no such file (a .py file, or a module name on the Python path)")
    name = os.path.splitext(os.path.basename(full))[0]
    if not name.isidentifier():
        raise UserModuleError(f"--import {path}: {name!r} cannot name a Python module (letters, digits and "
                              "underscores, not starting with a digit): rename the file")
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) != full:
        name = f"user_module_{len(_FILES)}_{name}"  # another module already has the file's name
    spec = importlib.util.spec_from_file_location(name, full)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as an import does: pickling and dataclasses find the module by name
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        raise UserModuleError(f"--import {path}: importing it raised {_described(e, full)}") from None
    _FILES[full] = module
    return module


def _described(error, path=None):
    """``ZeroDivisionError: division by zero (my_vehicles.py, line 7)``: the exception and where it was
    raised, in the user's file when it shows there, else in the innermost frame outside the import."""
    text = " ".join(f"{type(error).__name__}: {error}".split())
    if isinstance(error, SyntaxError):  # its message already names the file and line
        return text
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if "importlib" not in f.filename and f.filename != __file__]
    own = [f for f in frames if path and os.path.abspath(f.filename) == path]
    where = (own or frames)[-1:]
    return f"{text} ({where[0].filename}, line {where[0].lineno})" if where else text
