"""Why adaptation from an initialisation diverges, when it does: each task's support
loss over the learner's own inner SGD steps, and for a task whose loss ends above where
it started (or non-finite) the top Hessian eigenvalue of its support loss at its first
steps, beside plain gradient descent's stability bound 2 / inner_lr (mann.analysis.curvature).
"""

import math
from typing import Callable, Optional

import numpy as np

from mann.analysis import curvature
from mann.meta import gradient_learner


def adaptation_stability(
  learner: gradient_learner.GradientMetaLearner,
  sampler,
  *,
  num_tasks: int,
  num_steps: int,
  eigen_steps: int = 4,
  tasks_for_scale: int = 20,
  on_diverging: Optional[Callable[[dict], None]] = None,
) -> dict:
  """Adapts to tasks 0..num_tasks-1 of `sampler` as the learner's evaluation does (its
  task format, inner rate, batch-norm mode and adapted weights, first order) and
  measures the curvature where adaptation diverges.

  The Hessian is that of the support loss over the weights the inner loop adapts (all,
  or e.g. only the head): along those directions alone does an inner step move.

  Args:
    learner: a GradientMetaLearner with one fixed inner rate (MAML, FOMAML, Reptile,
      Transfer; not learned per-step rates, which have no single bound).
    sampler: the split's episode sampler.
    num_tasks: tasks to adapt to.
    num_steps: inner SGD steps per task.
    eigen_steps: for a diverging task, the top eigenvalue at steps 0..eigen_steps-1.
    tasks_for_scale: the median top eigenvalue at the initialisation is over the first
      this many tasks (the typical curvature beside the diverging tasks').
    on_diverging: called with each diverging task's record as it is found (progress).

  Returns:
    {"num_tasks", "num_steps", "inner_lr", "stability_bound": 2 / inner_lr,
     "num_diverging", "diverging_tasks": [task ids], "median_top_eigenvalue_at_start",
     "tasks": [{"task", "support_loss_by_step": [num_steps + 1], and for a diverging
     task "top_hessian_eigenvalue_by_step": [eigen_steps]}]}.

  Raises:
    ValueError: the learner has no inner loop or learns its inner rates.
  """
  if not isinstance(learner, gradient_learner.GradientMetaLearner):
    raise ValueError(
      f"adaptation stability needs a learner with an inner loop (MAML, "
      f"FOMAML, Reptile, Transfer), not {type(learner).__name__}"
    )
  if getattr(learner, "inner_lrs", None) is not None:
    raise ValueError(
      "adaptation stability needs one fixed inner rate: learned per-step "
      "rates (learn_inner_lrs) have no single bound 2 / inner_lr"
    )
  weights = [v.value for v in learner.model.trainable_variables]
  rates = learner.inner_learning_rates(num_steps)
  adapted = learner.adapted_weights
  split = lambda ws: (
    [w for w, a in zip(ws, adapted) if a],
    [w for w, a in zip(ws, adapted) if not a],
  )

  def support_loss(moving, fixed, episode, step):
    """Inner step `step`'s support loss at the weights `moving` (adapted) and `fixed`
    (not): one function for every task, so curvature's power iteration is traced once
    per step."""
    moving, fixed = iter(moving), iter(fixed)
    merged = [next(moving) if a else next(fixed) for a in adapted]
    return learner.support_loss(merged, episode, step=step)

  def top_eigenvalue(ws, episode, step) -> float:
    moving, fixed = split(ws)
    return curvature.top_hessian_eigenvalue(support_loss, moving, args=(fixed, episode, step))

  tasks, diverging, at_start = [], [], []
  for task in range(num_tasks):
    episode = sampler.episode(task)
    trajectory, _ = learner._adapt(  # pylint: disable=protected-access
      learner.model,
      weights,
      [learner._statistics(s) for s in range(num_steps)],  # pylint: disable=protected-access
      episode,
      learning_rates=rates,
      first_order=True,
      training=learner.batch_norm == "transductive",
    )
    losses = [float(learner.support_loss(ws, episode, step=s)) for s, ws in enumerate(trajectory)]
    record = {"task": task, "support_loss_by_step": losses}
    if task < tasks_for_scale:
      at_start.append(top_eigenvalue(weights, episode, 0))
    if not (math.isfinite(losses[-1]) and losses[-1] <= losses[0]):
      record["top_hessian_eigenvalue_by_step"] = [
        top_eigenvalue(trajectory[s], episode, s) for s in range(min(eigen_steps, len(trajectory)))
      ]
      diverging.append(record)
      if on_diverging is not None:
        on_diverging(record)
    tasks.append(record)
  inner_lr = float(learner.inner_lr)
  return {
    "num_tasks": num_tasks,
    "num_steps": num_steps,
    "inner_lr": inner_lr,
    "stability_bound": 2 / inner_lr,
    "num_diverging": len(diverging),
    "diverging_tasks": [r["task"] for r in diverging],
    "median_top_eigenvalue_at_start": float(np.median(at_start)),
    "tasks": tasks,
  }
