"""Meta-test: adapt to held-out tasks and score the query sets, with confidence intervals."""

import hashlib

import numpy as np
import tensorflow as tf

from mann.data import pipeline
from mann.evaluation import metrics
from mann.meta import learner as learner_lib


def score_tasks(
  learner: learner_lib.MetaLearner,
  sampler,
  *,
  num_tasks: int,
  num_inner_steps: int,
  batch_size: int = 25,
  first_task: int = 0,
) -> dict[str, np.ndarray]:
  """Per-task query scores after 0..num_inner_steps steps on tasks first..first+num-1.

  Args:
    learner: any MetaLearner (its evaluate_tasks).
    sampler: the evaluation split's episode sampler.
    num_tasks: how many tasks (600 in the MAML protocol).
    num_inner_steps: adaptation steps on each support set.
    batch_size: tasks adapted together (memory vs speed; no effect on the scores).
    first_task: index of the first task; the same indices give the same tasks.

  Returns:
    {"loss": [num_tasks, num_inner_steps + 1], METRIC: [...]} as float64 arrays.
  """
  evaluate = tf.function(lambda batch: learner.evaluate_tasks(batch, num_inner_steps))
  scores: dict[str, list[np.ndarray]] = {}
  for batch in pipeline.episodes(
    sampler, num_episodes=num_tasks, first_episode=first_task, batch_size=batch_size
  ):
    for name, value in evaluate(batch).items():
      scores.setdefault(name, []).append(value.numpy())
  return {name: np.concatenate(parts).astype(np.float64) for name, parts in scores.items()}


def summarise(scores: dict[str, np.ndarray], metric_name: str) -> dict:
  """Mean and 95% CI of the metric after the last step, and after each step."""
  per_step = scores[metric_name]
  by_steps = {}
  for step in range(per_step.shape[1]):
    mean, ci95 = metrics.mean_and_ci95(per_step[:, step])
    by_steps[str(step)] = {"mean": mean, "ci95": ci95}
  final = by_steps[str(per_step.shape[1] - 1)]
  return {
    metric_name: final["mean"],
    "ci95": final["ci95"],
    "num_tasks": per_step.shape[0],
    f"{metric_name}_by_steps": by_steps,
  }


def summarise_by_instance(scores: dict[str, np.ndarray]) -> dict:
  """Mean and 95% CI of the accuracy at each presentation of a class (online protocol).

  Args:
    scores: {"accuracy_by_instance": [num_tasks, L]} from Episodic.evaluate_tasks.

  Returns:
    {"accuracy_by_instance": [L means], "ci95_by_instance": [L], "num_tasks": n}; index
    0 is the 1st presentation.
  """
  per_instance = scores["accuracy_by_instance"]
  summaries = [metrics.mean_and_ci95(per_instance[:, i]) for i in range(per_instance.shape[1])]
  return {
    "accuracy_by_instance": [m for m, _ in summaries],
    "ci95_by_instance": [c for _, c in summaries],
    "num_tasks": per_instance.shape[0],
  }


ONLINE = "online"
FEW_SHOT = "few_shot"
_ONLINE_SCORES = "accuracy_by_instance"  # what evaluate_tasks returns for online episodes
_LOGGED_INSTANCES = (1, 2, 5, 10)  # Santoro et al.'s Table 1 columns


def report(scores: dict[str, np.ndarray], *, metric_name: str) -> dict:
  """score_tasks' scores summarised for either protocol, which the scores tell apart
  (learner.MetaLearner.evaluate_tasks).

  Args:
    scores: score_tasks' result.
    metric_name: the learner's objective.metric_name ("accuracy", "mse").

  Returns:
    few-shot: {"protocol": "few_shot", "metric": METRIC, "num_tasks", METRIC: the mean
      after the last step,
      "ci95", "METRIC_by_steps": {"s": mean after s steps}, "ci95_by_steps": {"s": ...}};
    online: {"protocol": "online", "num_tasks", "accuracy": the mean over instances,
      "accuracy_by_instance": [L means], "ci95_by_instance": [L]}.
  """
  if _ONLINE_SCORES in scores:
    summary = summarise_by_instance(scores)
    return {
      "protocol": ONLINE,
      "num_tasks": summary["num_tasks"],
      "accuracy": float(np.mean(scores[_ONLINE_SCORES])),
      "accuracy_by_instance": summary["accuracy_by_instance"],
      "ci95_by_instance": summary["ci95_by_instance"],
    }
  summary = summarise(scores, metric_name)
  by_steps = summary[f"{metric_name}_by_steps"]
  return {
    "protocol": FEW_SHOT,
    "metric": metric_name,
    "num_tasks": summary["num_tasks"],
    metric_name: summary[metric_name],
    "ci95": summary["ci95"],
    f"{metric_name}_by_steps": {k: v["mean"] for k, v in by_steps.items()},
    "ci95_by_steps": {k: v["ci95"] for k, v in by_steps.items()},
  }


def per_task_scores(scores: dict[str, np.ndarray], metric_name: str) -> np.ndarray:
  """Each task's headline score, [num_tasks]: the metric after the last step (few-shot),
  or the accuracy over the episode's steps (online)."""
  if _ONLINE_SCORES in scores:
    return scores[_ONLINE_SCORES].mean(axis=1)
  return scores[metric_name][:, -1]


def paired_difference(
  scores: dict[str, np.ndarray], control: dict[str, np.ndarray], *, metric_name: str
) -> dict:
  """The per-task difference scores - control on the same tasks (score_tasks of the
  same task indices): its mean and 95% interval (mean_and_ci95), whether the interval
  excludes 0, and online also per instance.

  Returns:
    {"mean", "ci95", "excludes_zero"}; online also "mean_by_instance", "ci95_by_instance".
  """
  difference = per_task_scores(scores, metric_name) - per_task_scores(control, metric_name)
  mean, ci95 = metrics.mean_and_ci95(difference)
  result: dict = {"mean": mean, "ci95": ci95, "excludes_zero": bool(abs(mean) > ci95)}
  if _ONLINE_SCORES in scores:
    by_instance = scores[_ONLINE_SCORES] - control[_ONLINE_SCORES]
    pairs = [metrics.mean_and_ci95(by_instance[:, i]) for i in range(by_instance.shape[1])]
    result["mean_by_instance"] = [m for m, _ in pairs]
    result["ci95_by_instance"] = [c for _, c in pairs]
  return result


def report_scalars(summary: dict) -> dict[str, float]:
  """A report's headline numbers as flat scalars, for a log line: few-shot {METRIC,
  METRIC_ci95} after the last step; online the accuracy at the 1st, 2nd, 5th and 10th
  instance, {accuracy_instance_1: ..., ...} (those the episodes have)."""
  if summary["protocol"] == ONLINE:
    return {
      f"accuracy_instance_{i + 1}": a
      for i, a in enumerate(summary["accuracy_by_instance"])
      if i + 1 in _LOGGED_INSTANCES
    }
  metric = summary["metric"]
  return {metric: summary[metric], f"{metric}_ci95": summary["ci95"]}


def report_line(summary: dict) -> str:
  """A report in words, e.g. "accuracy 93.93 +- 0.82 % over 600 tasks after 3 steps"."""
  if summary["protocol"] == ONLINE:
    shown = " / ".join(f"{100 * a:.1f}" for a in summary["accuracy_by_instance"])
    return f"accuracy by instance {shown} % over {summary['num_tasks']} episodes"
  metric = summary["metric"]
  steps = len(summary["ci95_by_steps"]) - 1
  if metric == "accuracy":
    shown = f"{100 * summary[metric]:.2f} +- {100 * summary['ci95']:.2f} %"
  else:
    shown = f"{summary[metric]:.4g} +- {summary['ci95']:.2g}"
  return f"{metric} {shown} over {summary['num_tasks']} tasks after {steps} steps"


def tasks_digest(sampler, num_tasks: int, first_task: int = 0):
  """A hex digest of which classes and images tasks first..first+num-1 hold (before
  any augmentation or support shuffle): two evaluations with equal digests scored the
  same tasks. None for a sampler that does not draw few-shot tasks from class images."""
  if not hasattr(sampler, "episode_image_indices"):
    return None
  indices = tf.range(first_task, first_task + num_tasks)
  # pfor has no converters for the stateless random ops: their loop fallback is silent.
  draw = lambda i: tf.vectorized_map(sampler.episode_image_indices, i, warn=False)
  classes, images = tf.function(draw)(indices)
  digest = hashlib.sha256(np.asarray(classes, np.int64).tobytes())
  digest.update(np.asarray(images, np.int64).tobytes())
  return digest.hexdigest()[:16]
