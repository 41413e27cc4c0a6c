"""``setup()`` and ``main()`` behind ``tools/train_net.py`` (FastReID's train_net, with VAL's config)."""
import logging
import os
import time

import yaml

from fastreid.config import get_cfg
from fastreid.engine import default_setup
from fastreid.utils import comm
from fastreid.utils.env import seed_all_rng
from fastreid.utils.logger import setup_logger

from ..atomic import write_json
from ..config import add_val_config, check_schedule, resolve_device, resolve_pretrain, validate_val_config
from ..errors import ConfigError, MissingFileError, OutputDirError, UserInputError
from ..modeling.imagenet import resolve_imagenet_weights
from ..modeling.vit_weights import resolve_vit_weights
from .denormals import flush_denormals
from .environment import run_environment
from .step_levers import check_step_levers
from .checkpoint import AtomicCheckpointer, check_checkpoint_compatible, read_checkpoint_model
from .trainer import ViewpointTrainer
from .user_modules import import_user_modules

logger = logging.getLogger(__name__)

__all__ = ["setup", "main", "build_config", "ConfigError", "OutputDirError", "user_errors"]


def check_output_dir(path):
    """Fail before any work when OUTPUT_DIR cannot hold logs and checkpoints."""
    if not path:
        return
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".write-test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise OutputDirError(f"OUTPUT_DIR {path} is not writable ({e.strerror or e}); "
                             "choose another folder with OUTPUT_DIR /path") from None


def build_config(config_file="", opts=()):
    """The full config: FastReID defaults, ``MODEL.VAL``, the file, then command-line overrides."""
    cfg = get_cfg()
    add_val_config(cfg)
    if config_file and not os.path.isfile(config_file):
        raise MissingFileError(f"config file {config_file} does not exist")
    for source, merge, arg in ((config_file, cfg.merge_from_file, config_file),
                               ("command line", cfg.merge_from_list, list(opts or []))):
        if not arg:
            continue
        try:
            merge(arg)
        except OSError as e:  # a _BASE_ file that does not exist or cannot be read
            raise MissingFileError(f"{source}: {e.strerror or e}: {e.filename or ''}") from None
        except yaml.YAMLError as e:
            raise ConfigError(yaml_error_line(source, e)) from None
        except UnicodeDecodeError as e:  # the file, or a _BASE_ it names
            raise ConfigError(f"{source}: not a UTF-8 text file ({e.reason} at byte {e.start})") from None
        except (AttributeError, TypeError):  # a YAML document that is a list or a value, not keys
            raise ConfigError(f"{source}: a config is a YAML mapping of keys (MODEL:, SOLVER:, ...), and this one "
                              "(or a _BASE_ it names) is not") from None
        except (KeyError, AssertionError, ValueError) as e:
            msg = e.args[0] if e.args else str(e)
            raise ConfigError(f"{source}: {msg}") from None
    resolve_device(cfg)
    validate_val_config(cfg)
    check_step_levers(cfg)
    return cfg


def yaml_error_line(source, error):
    """One line for a YAML error of ``source`` (or of a ``_BASE_`` it names): file, line, column, problem.

    FastReID reads configs with ``yaml.safe_load`` (``allow_unsafe`` stays off), so a tag that would
    build a Python object (``!!python/object/apply:os.system``) is refused, never run."""
    mark = getattr(error, "problem_mark", None)
    where = f"{mark.name}, line {mark.line + 1}, column {mark.column + 1}" if mark else source
    problem = getattr(error, "problem", None) or " ".join(str(error).split())
    if isinstance(error, yaml.constructor.ConstructorError):
        problem += " (a config holds plain YAML values: tags that would build Python objects are refused)"
    return f"{where}: {problem}"


def setup(args):
    import_user_modules(getattr(args, "imports", ()))  # again in each process --num-gpus spawns
    cfg = build_config(args.config_file, args.opts)
    threads = flush_denormals(cfg.RUN.FLUSH_DENORMAL)  # before any data or model: engine/denormals.py
    if comm.is_main_process():
        check_output_dir(cfg.OUTPUT_DIR)
    setup_plugin_logger(cfg.OUTPUT_DIR)
    log_denormals(cfg.RUN.FLUSH_DENORMAL, threads)
    if args.eval_only:  # the checkpoint holds every weight: no ImageNet file is needed or read
        cfg.MODEL.BACKBONE.PRETRAIN = False
        num_classes_from_checkpoint(cfg)
    else:
        check_schedule(cfg)  # what the config alone decides; the trainer checks the rest (iterations an epoch)
        resolve_pretrain(cfg)
        resolve_imagenet_weights(cfg)  # before any other work: found, downloaded or refused in one line
        resolve_vit_weights(cfg)
    cfg.freeze()
    default_setup(cfg, args)
    if cfg.RUN.SEED >= 0:
        seed_all_rng(cfg.RUN.SEED + comm.get_rank())
    return cfg


def log_denormals(enabled, threads):
    """One log line on what ``RUN.FLUSH_DENORMAL`` did (``threads``: :func:`.denormals.flush_denormals`'s)."""
    if threads is None:
        logger.info("RUN.FLUSH_DENORMAL: this CPU has no flush-to-zero mode; denormal floats are computed as they are")
        return
    done, total = threads
    what = "flush denormal floats to zero" if enabled else "compute on denormal floats"
    if done == total:
        logger.info(f"RUN.FLUSH_DENORMAL {enabled}: all {total} CPU threads {what}")
    else:
        logger.warning(f"RUN.FLUSH_DENORMAL {enabled} reached {done} of torch's {total} CPU threads: the others were "
                       "started by torch work done earlier in this process and keep their mode. Run the training "
                       "in a process of its own (tools/train_net.py) to set it on every thread.")


def setup_plugin_logger(output_dir):
    """This plugin's log lines (``fastreid_val.*``) where FastReID's go: the main process's console and
    every process's ``log.txt`` (FastReID's ``default_setup`` configures its own ``fastreid`` logger
    only, so they would reach neither). Records still propagate, to handlers a caller installed."""
    setup_logger(output_dir or None, distributed_rank=comm.get_rank(), name="fastreid_val")
    logging.getLogger("fastreid_val").propagate = True


def num_classes_from_checkpoint(cfg, state=None):
    """For --eval-only, size the classifier like the checkpoint so it loads without warnings.

    ``state``: the checkpoint's model state when already read. MGN's classifiers are ``b1_head`` ...
    """
    if cfg.MODEL.HEADS.NUM_CLASSES or not cfg.MODEL.WEIGHTS:
        return
    state = read_checkpoint_model(cfg.MODEL.WEIGHTS) if state is None else state
    weight = state.get("heads.weight", state.get("b1_head.weight"))
    if weight is not None:
        v = cfg.MODEL.VAL.NUM_VIEWPOINTS if cfg.MODEL.HEADS.NAME == "IdentityViewpointHead" else 1
        cfg.MODEL.HEADS.NUM_CLASSES = weight.shape[0] // v


def main(args, trainer_cls=ViewpointTrainer):
    cfg = setup(args)
    if args.eval_only:
        model = trainer_cls.build_model(cfg)
        check_checkpoint_compatible(model, cfg.MODEL.WEIGHTS)
        AtomicCheckpointer(model).load(cfg.MODEL.WEIGHTS)
        return trainer_cls.test(cfg, model)
    trainer = trainer_cls(cfg)
    trainer.resume_or_load(resume=args.resume)
    start = time.perf_counter()
    results = trainer.train()
    elapsed = time.perf_counter() - start
    if comm.is_main_process() and results:
        iters = trainer.max_iter - trainer.start_epoch * trainer.iters_per_epoch
        write_results(cfg.OUTPUT_DIR, metrics_by_test_set(cfg, results), train_time_s=elapsed,
                      images_per_s=iters * cfg.SOLVER.IMS_PER_BATCH / max(elapsed, 1e-9),
                      environment=run_environment(cfg.MODEL.DEVICE))
    return results


def metrics_by_test_set(cfg, results):
    """``{test set: {metric: value}}`` from what ``test()`` returns (the metrics alone for one test set)."""
    names = list(cfg.DATASETS.TESTS)
    by_set = results if len(names) > 1 else {names[0]: results}
    return {name: {k: float(v) for k, v in m.items() if isinstance(v, (int, float)) or hasattr(v, "item")}
            for name, m in by_set.items()}


def write_results(output_dir, metrics, **extra):
    """``<OUTPUT_DIR>/results.json``: ``{"metrics": {test set: {metric: value}}, **extra}`` (run facts such
    as the training time), read by tools/compare.py."""
    write_json(os.path.join(output_dir, "results.json"), {"metrics": metrics, **extra})


def user_errors():
    """Exceptions that describe a bad input in one line (printed without a traceback by the tools)."""
    return (UserInputError,)
