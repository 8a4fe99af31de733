"""How an initialisation adapts, beyond its scores: fine-tuning curves far past the
trained number of inner steps, which weights move, whether the representations change,
and the support loss's slope and curvature at the start."""

from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from mann.analysis import curvature
from mann.analysis import long_adaptation
from mann.analysis import representations
from mann.data import pipeline
from mann.evaluation import metrics
from mann.meta import gradient_learner
from mann.models import activations


def measure_adaptation(
  learner: gradient_learner.GradientMetaLearner,
  sampler,
  *,
  steps: Sequence[int],
  num_tasks: int,
  tasks_per_batch: int = 25,
  num_curvature_tasks: int = 10,
) -> dict:
  """Fine-tunes the learner's initialisation on tasks 0..num_tasks-1 and measures it.

  Args:
    learner: a GradientMetaLearner whose model has a task-batched form (FineTuner's).
    sampler: the split's episode sampler.
    steps: increasing step counts (from 0) to score the queries at.
    num_tasks: tasks to fine-tune on.
    tasks_per_batch: tasks adapted together (memory vs speed; the same numbers).
    num_curvature_tasks: the first this many tasks' support-loss gradient norm and top
      Hessian eigenvalue at the initialisation (power iteration, 20 products each).

  Returns:
    {"loss_by_steps" and "METRIC_by_steps": {"s": {"mean", "ci95"}}, "relative_travel"
     and "absolute_travel": {weight path: mean over tasks of ||w_S - w_0|| / ||w_0||
     (None for a weight that starts at 0) and ||w_S - w_0||, S the last step},
     "cka_before_after": {block: mean linear CKA of the query activations at 0 and S
     steps}, "support_gradient_norm" and "support_top_hessian_eigenvalue": {"mean",
     "ci95"} (with num_curvature_tasks > 0), "inner_lr"}.

  Raises:
    ValueError: the model has no task-batched form.
  """
  initial = [w.numpy() for w in learner.model.trainable_weights]
  names = [w.path for w in learner.model.trainable_weights]
  network, weight_ids, statistic_ids = activations.feed_forward_part(learner.model)
  non_trainable = [v.numpy() for v in learner.model.non_trainable_weights]
  training = learner.batch_norm == "transductive"
  scores: dict[str, list[np.ndarray]] = {}
  travel: list[list[float]] = []
  absolute_travel: list[list[float]] = []
  cka: list[dict[str, float]] = []
  tuner = long_adaptation.FineTuner(learner)
  for batch in pipeline.episodes(sampler, num_episodes=num_tasks, batch_size=tasks_per_batch):
    result = tuner.scores(batch, checkpoints=steps)
    for key in ("loss", learner.objective.metric_name):
      scores.setdefault(key, []).append(result[key])
    adapted = result["weights"][-1]
    for t in range(batch.query_y.shape[0]):
      travel.append(representations.relative_travel(initial, [w[t] for w in adapted]))
      absolute_travel.append([float(np.linalg.norm(w[t] - w0)) for w, w0 in zip(adapted, initial)])
      queries = batch.query_x[t]
      before = activations.block_activations(
        network,
        [initial[i] for i in weight_ids],
        [non_trainable[i] for i in statistic_ids],
        queries,
        training=training,
      )
      after = activations.block_activations(
        network,
        [adapted[i][t] for i in weight_ids],
        [non_trainable[i] for i in statistic_ids],
        queries,
        training=training,
      )
      cka.append(
        {
          name: representations.linear_cka(before[name].numpy(), after[name].numpy())
          for name in before
        }
      )
  summary: dict[str, Any] = {}
  for key, parts in scores.items():
    per_task = np.concatenate(parts)
    summary[f"{key}_by_steps"] = {
      str(s): dict(zip(("mean", "ci95"), metrics.mean_and_ci95(per_task[:, i])))
      for i, s in enumerate(steps)
    }
  # Relative travel of a weight that starts at zero (a fresh bias) is undefined: null,
  # with its absolute travel beside it.
  absolute = np.array(absolute_travel).mean(axis=0)
  summary["relative_travel"] = {
    n: (float(v) if np.isfinite(v) else None) for n, v in zip(names, np.array(travel).mean(axis=0))
  }
  summary["absolute_travel"] = {n: float(v) for n, v in zip(names, absolute)}
  blocks = list(cka[0])
  summary["cka_before_after"] = {b: float(np.nanmean([c[b] for c in cka])) for b in blocks}
  norms, eigenvalues = [], []
  if num_curvature_tasks:
    weights = [tf.constant(w) for w in initial]
    loss_fn = lambda ws, task: learner.support_loss(ws, task)  # one trace for every task
    for index in range(num_curvature_tasks):
      task = sampler.episode(index)
      with tf.GradientTape() as tape:
        tape.watch(weights)
        loss = loss_fn(weights, task)
      gradient = tape.gradient(loss, weights)
      norms.append(float(tf.sqrt(sum(tf.reduce_sum(g * g) for g in gradient))))
      eigenvalues.append(
        curvature.top_hessian_eigenvalue(
          loss_fn, weights, num_iterations=20, seed=index, args=(task,)
        )
      )
    summary["support_gradient_norm"] = dict(zip(("mean", "ci95"), metrics.mean_and_ci95(norms)))
    summary["support_top_hessian_eigenvalue"] = dict(
      zip(("mean", "ci95"), metrics.mean_and_ci95(eigenvalues))
    )
  summary["inner_lr"] = float(learner.inner_lr)
  return summary


def measure_sensitivity(
  learner: gradient_learner.GradientMetaLearner, sampler, *, num_tasks: int
) -> dict:
  """How the initialisation responds to one inner step, on tasks 0..num_tasks-1.

  Per task, at the initialisation w_0: the cosine between the support loss's gradient
  g_s and the query loss's g_q (flattened over the weights the inner loop adapts,
  learner.adapted_weights); one SGD step w_1 = w_0 - rate * g_s of those weights at the
  learner's first inner rates; the query loss's drop
  L_q(w_0) - L_q(w_1); that drop per unit of parameter change, / ||w_1 - w_0||, and per
  unit of relative change, / (||w_1 - w_0|| / ||w_0||) (the relative form does not
  change when batch norm lets the weights' scale change).

  Returns:
    {"support_query_cosine", "query_loss_drop", "query_drop_per_unit_change",
     "query_drop_per_relative_change"}: each {"mean", "ci95", "quantiles" at 0.05,
     0.25, 0.5, 0.75, 0.95, "per_task"}, and "num_tasks".
  """
  weights, _ = learner._weights()  # pylint: disable=protected-access
  weights = [tf.convert_to_tensor(w) for w in weights]
  rates = learner.inner_learning_rates(1)[0]
  flat = lambda tensors: tf.concat([tf.reshape(t, [-1]) for t in tensors], axis=0)
  initial_norm = float(tf.norm(flat([w for w, a in zip(weights, learner.adapted_weights) if a])))
  records: dict[str, list[float]] = {
    "support_query_cosine": [],
    "query_loss_drop": [],
    "query_drop_per_unit_change": [],
    "query_drop_per_relative_change": [],
  }
  for index in range(num_tasks):
    task = sampler.episode(index)
    with tf.GradientTape(persistent=True) as tape:
      tape.watch(weights)
      support = learner.support_loss(weights, task)
      query = learner.query_loss(weights, task)
    support_gradient = tape.gradient(support, weights)
    query_gradient = tape.gradient(query, weights)
    del tape
    adapted = learner.adapted_weights
    g_s = flat([g for g, a in zip(support_gradient, adapted) if a])
    g_q = flat([g for g, a in zip(query_gradient, adapted) if a])
    cosine = float(tf.reduce_sum(g_s * g_q) / (tf.norm(g_s) * tf.norm(g_q)))
    stepped = [
      w - r * g if a else w for w, r, g, a in zip(weights, rates, support_gradient, adapted)
    ]
    change = float(tf.norm(flat(stepped) - flat(weights)))
    drop = float(query) - float(learner.query_loss(stepped, task, step=1))
    records["support_query_cosine"].append(cosine)
    records["query_loss_drop"].append(drop)
    records["query_drop_per_unit_change"].append(drop / change)
    records["query_drop_per_relative_change"].append(drop / (change / initial_norm))
  summary: dict[str, Any] = {"num_tasks": num_tasks}
  for key, values in records.items():
    mean, ci95 = metrics.mean_and_ci95(values)
    summary[key] = {
      "mean": mean,
      "ci95": ci95,
      "quantiles": {
        f"{q:g}": float(v)
        for q, v in zip(
          (0.05, 0.25, 0.5, 0.75, 0.95), np.quantile(values, [0.05, 0.25, 0.5, 0.75, 0.95])
        )
      },
      "per_task": values,
    }
  return summary


COSINE_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def task_update_cosines(learner, sampler, *, num_tasks: int, tasks_per_batch: int = 25) -> dict:
  """The distribution of the cosines between tasks' updates at the initialisation.

  Args:
    learner: a mann.meta.Reptile (its task_updates: initial minus adapted weights after
      its inner steps).
    sampler: the split's episode sampler; tasks 0..num_tasks-1 (num_tasks >= 2).
    tasks_per_batch: tasks adapted together (the same numbers).

  Returns:
    {"mean", "fraction_negative", "quantiles": {q: value} at COSINE_QUANTILES,
     "histogram": {"edges" [21] over [-1, 1], "counts" [20]}, "num_tasks", "num_pairs"}
    over every pair of the num_tasks tasks.
  """
  if num_tasks < 2:
    raise ValueError(f"need at least two tasks, got {num_tasks}")
  parts = []
  for batch in pipeline.episodes(sampler, num_episodes=num_tasks, batch_size=tasks_per_batch):
    updates = learner.task_updates(batch)
    parts.append(tf.concat([tf.reshape(u, [u.shape[0], -1]) for u in updates], axis=1))
  cosines = gradient_learner.pairwise_cosines([tf.concat(parts, axis=0)]).numpy()
  counts, edges = np.histogram(cosines, bins=20, range=(-1.0, 1.0))
  return {
    "mean": float(cosines.mean()),
    "fraction_negative": float((cosines < 0).mean()),
    "quantiles": {
      f"{q:g}": float(v) for q, v in zip(COSINE_QUANTILES, np.quantile(cosines, COSINE_QUANTILES))
    },
    "histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
    "num_tasks": num_tasks,
    "num_pairs": int(cosines.size),
  }
