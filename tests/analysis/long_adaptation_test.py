"""mann/analysis/long_adaptation.py: one compiled step called again and again gives the
numbers of evaluate_tasks' unrolled inner loop, and a graph that does not grow."""

import keras
import numpy as np
import pytest

from mann import meta
from mann import models
from mann.analysis import long_adaptation
from tests import sequence_models


def _conv4_maml(**options):
  keras.utils.set_random_seed(0)
  model = models.conv4(num_classes=sequence_models.NUM_WAYS, image_shape=(8, 8, 1), num_filters=2)
  return meta.MAML(model, objective=meta.CLASSIFICATION, num_inner_steps=1, inner_lr=0.4, **options)


def _mann_maml():
  model = sequence_models.tiny_sequence_model("mann")
  return meta.MAML(
    model,
    objective=meta.CLASSIFICATION,
    num_inner_steps=1,
    inner_lr=0.4,
    task_format=meta.SequenceFormat(num_classes=sequence_models.NUM_WAYS),
  )


@pytest.mark.parametrize(
  "make,image_shape",
  [
    (_conv4_maml, (8, 8, 1)),
    (lambda: _conv4_maml(learn_inner_lrs=True, batch_norm="per_step"), (8, 8, 1)),
    (_mann_maml, (4, 4, 1)),
  ],
  ids=["maml_conv4", "maml++_conv4", "maml_mann"],
)
def test_scores_equal_the_unrolled_evaluation_and_zero_steps_the_initialisation(make, image_shape):
  learner = make()
  tasks = sequence_models.image_tasks(
    num_tasks=3, num_shots=1, num_queries=2, image_shape=image_shape
  )
  unrolled = learner.evaluate_tasks(tasks, 3)
  scores = long_adaptation.fine_tune_scores(learner, tasks, checkpoints=[0, 1, 3])
  for name in ("loss", "accuracy"):
    np.testing.assert_allclose(
      scores[name], np.asarray(unrolled[name])[:, [0, 1, 3]], rtol=1e-5, atol=1e-6
    )
  initial = [w.numpy() for w in learner.model.trainable_weights]
  for got, want in zip(scores["weights"][0], initial):
    np.testing.assert_array_equal(got, np.broadcast_to(want, got.shape))
  assert any(not np.allclose(a, b) for a, b in zip(scores["weights"][2], scores["weights"][0]))


def test_many_steps_and_batches_trace_one_step(monkeypatch):
  learner = _conv4_maml()
  batches = [
    sequence_models.image_tasks(
      num_tasks=2, num_shots=1, num_queries=1, image_shape=(8, 8, 1), seed=seed
    )
    for seed in (0, 1)
  ]
  traces = []
  adapt = learner._adapt  # Python runs it only while tracing the compiled step
  monkeypatch.setattr(learner, "_adapt", lambda *a, **k: (traces.append(1), adapt(*a, **k))[1])
  tuner = long_adaptation.FineTuner(learner)
  for tasks in batches:
    scores = tuner.scores(tasks, checkpoints=[0, 30])
    assert scores["loss"].shape == (2, 2) and np.all(np.isfinite(scores["loss"]))
  assert len(traces) == 1
  tasks = batches[0]
  with pytest.raises(ValueError, match="increasing"):
    long_adaptation.fine_tune_scores(learner, tasks, checkpoints=[2, 1])


def test_a_learner_that_maps_tasks_one_by_one_fine_tunes_through_the_batched_form():
  tasks = sequence_models.image_tasks(
    num_tasks=3, num_shots=1, num_queries=2, image_shape=(8, 8, 1)
  )
  mapped = _conv4_maml(task_mapping="map_fn")
  unrolled = mapped.evaluate_tasks(tasks, 2)
  scores = long_adaptation.fine_tune_scores(mapped, tasks, checkpoints=[0, 2])
  np.testing.assert_allclose(
    scores["loss"], np.asarray(unrolled["loss"])[:, [0, 2]], rtol=1e-5, atol=1e-6
  )
