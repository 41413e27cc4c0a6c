from .cross_view import view_metrics
from .evaluator import ViewpointReidEvaluator

__all__ = ["ViewpointReidEvaluator", "view_metrics"]
