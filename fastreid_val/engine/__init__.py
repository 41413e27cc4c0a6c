from .launcher import build_config, main, setup
from .trainer import ViewpointTrainer

__all__ = ["ViewpointTrainer", "build_config", "main", "setup"]
