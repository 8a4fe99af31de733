"""Meta-test loops and metrics."""

from mann.evaluation.evaluate import score_tasks
from mann.evaluation.evaluate import summarise
from mann.evaluation.metrics import mean_and_ci95
from mann.evaluation.evaluate import summarise_by_instance
from mann.evaluation.evaluate import tasks_digest

__all__ = [
    "mean_and_ci95",
    "score_tasks",
    "summarise",
    "summarise_by_instance",
    "tasks_digest",
]
