"""Meta-test loops and metrics."""

from mann.evaluation.evaluate import FEW_SHOT
from mann.evaluation.evaluate import ONLINE
from mann.evaluation.evaluate import paired_difference
from mann.evaluation.evaluate import per_task_scores
from mann.evaluation.evaluate import report
from mann.evaluation.evaluate import report_line
from mann.evaluation.evaluate import report_scalars
from mann.evaluation.evaluate import score_tasks
from mann.evaluation.evaluate import summarise
from mann.evaluation.evaluate import summarise_by_instance
from mann.evaluation.evaluate import tasks_digest
from mann.evaluation.metrics import equivalence_test
from mann.evaluation.metrics import mean_and_ci95

__all__ = [
  "FEW_SHOT",
  "ONLINE",
  "equivalence_test",
  "mean_and_ci95",
  "paired_difference",
  "per_task_scores",
  "report",
  "report_line",
  "report_scalars",
  "score_tasks",
  "summarise",
  "summarise_by_instance",
  "tasks_digest",
]
