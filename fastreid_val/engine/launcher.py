"""``setup()`` and ``main()`` behind ``tools/train_net.py`` (FastReID's train_net, with VAL's config)."""
import logging

from fastreid.config import get_cfg
from fastreid.engine import default_setup
from fastreid.utils.checkpoint import Checkpointer

from ..config import add_val_config, resolve_device, validate_val_config
from .checkpoint import check_checkpoint_compatible, read_checkpoint_model
from .trainer import ViewpointTrainer

logger = logging.getLogger(__name__)

__all__ = ["setup", "main", "build_config", "ConfigError"]


class ConfigError(KeyError):
    """An unknown or malformed config key; the message names it and where it came from."""

    def __str__(self):
        return self.args[0]


def build_config(config_file="", opts=()):
    """The full config: FastReID defaults, ``MODEL.VAL``, the file, then command-line overrides."""
    cfg = get_cfg()
    add_val_config(cfg)
    for source, merge, arg in ((config_file, cfg.merge_from_file, config_file),
                               ("command line", cfg.merge_from_list, list(opts or []))):
        if not arg:
            continue
        try:
            merge(arg)
        except (KeyError, AssertionError, ValueError) as e:
            msg = e.args[0] if e.args else str(e)
            raise ConfigError(f"{source}: {msg}") from None
    resolve_device(cfg)
    validate_val_config(cfg)
    return cfg


def setup(args):
    cfg = build_config(args.config_file, args.opts)
    if args.eval_only:
        cfg.MODEL.BACKBONE.PRETRAIN = False
        _num_classes_from_checkpoint(cfg)
    cfg.freeze()
    default_setup(cfg, args)
    return cfg


def _num_classes_from_checkpoint(cfg):
    """For --eval-only, size the classifier like the checkpoint so it loads without warnings."""
    if cfg.MODEL.HEADS.NUM_CLASSES or not cfg.MODEL.WEIGHTS:
        return
    weight = read_checkpoint_model(cfg.MODEL.WEIGHTS).get("heads.weight")
    if weight is not None:
        v = cfg.MODEL.VAL.NUM_VIEWPOINTS if cfg.MODEL.HEADS.NAME == "IdentityViewpointHead" else 1
        cfg.MODEL.HEADS.NUM_CLASSES = weight.shape[0] // v


def main(args, trainer_cls=ViewpointTrainer):
    cfg = setup(args)
    if args.eval_only:
        model = trainer_cls.build_model(cfg)
        check_checkpoint_compatible(model, cfg.MODEL.WEIGHTS)
        Checkpointer(model).load(cfg.MODEL.WEIGHTS)
        return trainer_cls.test(cfg, model)
    trainer = trainer_cls(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()
