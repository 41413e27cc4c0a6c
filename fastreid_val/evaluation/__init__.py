from .cross_view import rank_metrics, view_metrics
from .evaluator import ViewpointReidEvaluator

__all__ = ["ViewpointReidEvaluator", "rank_metrics", "view_metrics"]
