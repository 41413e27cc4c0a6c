"""The package's layers: dependencies run one way, every user error lives in errors.py, and importing
the plugin leaves FastReID's own classes as upstream wrote them where an override does the repair."""
import ast
import importlib
import os
import pkgutil

import pytest

import fastreid_val
from fastreid_val.errors import UserInputError

PKG = os.path.dirname(fastreid_val.__file__)


def _imports(path):
    """The ``fastreid_val`` subpackages (first level) a file imports, at module level or inside functions."""
    tree = ast.parse(open(path).read())
    module = os.path.relpath(path, os.path.dirname(PKG))[:-3].replace(os.sep, ".")
    package = module.rsplit(".", 1)[0] if not module.endswith("__init__") else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            names = [name] if node.module else [f"{name}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found |= {n.split(".")[1] for n in names if n.startswith("fastreid_val.") and n.count(".") >= 1
                  and n not in PURE_ALGORITHMS}
    return found


# Pure algorithms that depend on nothing of the package but ``errors``: any layer may use them (compat's
# S5 re-ranks with the same implementation as the evaluator). test_pure_algorithms_stay_pure holds that.
PURE_ALGORITHMS = {"fastreid_val.evaluation.rerank", "fastreid_val.evaluation.neighbours"}


def _files(sub):
    folder = os.path.join(PKG, sub)
    if os.path.isfile(folder + ".py"):
        return [folder + ".py"]
    return [os.path.join(root, f) for root, _, files in os.walk(folder) for f in files if f.endswith(".py")]


@pytest.mark.parametrize("layer, forbidden", [
    ("errors", {"atomic", "compat", "config", "data", "modeling", "evaluation", "engine", "experiments", "deploy"}),
    ("atomic", {"compat", "config", "data", "modeling", "evaluation", "engine", "experiments", "deploy"}),
    ("weights_file", {"atomic", "compat", "config", "data", "modeling", "evaluation", "engine", "experiments", "deploy"}),
    ("compat", {"data", "modeling", "evaluation", "engine", "experiments", "deploy"}),
    ("engine", {"experiments", "deploy"}),
    ("experiments", {"deploy"}),
    ("textfiles", {"atomic", "compat", "config", "data", "modeling", "evaluation", "engine", "experiments", "deploy"}),
    ("web", {"atomic", "compat", "config", "data", "modeling", "evaluation", "engine", "experiments", "deploy",
             "annotate", "labeller", "weights_file", "search_page"}),
    ("deploy", {"search_page", "annotate"}),  # the page stands on deploy/, not the other way round
])
def test_dependencies_run_one_way(layer, forbidden):
    for path in _files(layer):
        wrong = _imports(path) & forbidden
        assert not wrong, f"{os.path.relpath(path, PKG)} imports {sorted(wrong)}"


@pytest.mark.parametrize("module", sorted(PURE_ALGORITHMS))
def test_pure_algorithms_stay_pure(module):
    path = os.path.join(PKG, *module.split(".")[1:]) + ".py"
    assert _imports(path) <= {"errors"}, module


def test_the_import_scan_sees_relative_imports():
    assert {"experiments"} <= _imports(os.path.join(PKG, "deploy", "search.py"))
    assert {"engine", "errors"} <= _imports(os.path.join(PKG, "experiments", "compare.py"))


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_every_user_error_is_defined_in_errors_py():
    for info in pkgutil.walk_packages(fastreid_val.__path__, "fastreid_val."):
        importlib.import_module(info.name)
    classes = {c for c in _subclasses(UserInputError) if c.__module__.startswith("fastreid_val")}
    assert len(classes) > 10
    assert {c.__name__ for c in classes if c.__module__ != "fastreid_val.errors"} == set()


def test_importing_the_plugin_leaves_fastreid_where_an_override_repairs_it():
    import fastreid.data.build as data_build
    import fastreid.engine.defaults as defaults
    from fastreid.engine import DefaultTrainer, hooks
    from fastreid.solver import build as solver_build
    from fastreid.utils.events import CommonMetricPrinter

    from fastreid_val.engine import ViewpointTrainer

    assert defaults.build_optimizer is solver_build.build_optimizer  # S11
    assert DefaultTrainer.build_optimizer.__func__.__module__ == "fastreid.engine.defaults"
    assert DefaultTrainer.auto_scale_hyperparams.__module__ == "fastreid.engine.defaults"  # S8
    assert not getattr(data_build.build_reid_test_loader, "_fastreid_val_shim", False)  # S9
    assert CommonMetricPrinter.write.__module__ == "fastreid.utils.events"  # S10
    assert hooks.PeriodicWriter.__module__ == "fastreid.engine.hooks"
    for name in ("build_optimizer", "auto_scale_hyperparams", "build_test_loader", "build_hooks"):
        assert name in vars(ViewpointTrainer), name
