"""mann/models/task_engine.py: the engines implement the protocols mann.meta dispatches on."""

import numpy as np
import tensorflow as tf

from mann import models
from mann.meta import task_format
from mann.models import task_batched
from mann.models import task_batched_sequence
from mann.models import task_engine
from tests import sequence_models


def test_each_engine_implements_its_protocol_and_a_keras_model_none():
  conv4 = task_batched.TaskBatchedModel(models.conv4(num_classes=3, image_shape=(8, 8, 1)))
  sequence = task_batched_sequence.TaskBatchedSequenceModel(sequence_models.tiny_sequence_model())
  assert isinstance(conv4, task_engine.TaskEngine)
  assert not isinstance(conv4, task_engine.BranchedTaskEngine)
  assert isinstance(sequence, task_engine.BranchedTaskEngine)
  assert not isinstance(conv4.model, task_engine.TaskEngine)


class _UnbranchedEngine:
  """The sequence engine without branched_call: a TaskEngine, not a BranchedTaskEngine."""

  def __init__(self, engine):
    self.model = engine.model
    self.task_weights = engine.task_weights
    self.stateless_call = engine.stateless_call


def test_queries_run_branched_only_for_a_branched_engine_and_score_the_same(float64):
  engine = task_batched_sequence.TaskBatchedSequenceModel(sequence_models.tiny_sequence_model())
  unbranched = _UnbranchedEngine(engine)
  assert isinstance(unbranched, task_engine.TaskEngine)
  assert not isinstance(unbranched, task_engine.BranchedTaskEngine)
  tasks = sequence_models.image_tasks(num_tasks=2, num_queries=2)
  sequence_format = task_format.SequenceFormat(num_classes=sequence_models.NUM_WAYS)
  weights = engine.task_weights([v.value for v in engine.model.trainable_variables], 2)
  statistics = [v.value for v in engine.model.non_trainable_variables]
  branched_calls = []
  original = engine.branched_call
  engine.branched_call = lambda *a, **k: branched_calls.append(1) or original(*a, **k)
  outputs = {}
  for name, model in (("branched", engine), ("unbranched", unbranched)):
    forward = sequence_format.query_forward(model, tasks, training=True)
    outputs[name], _ = forward(weights, statistics)
  assert branched_calls == [1]  # the branched engine took its own path, the other did not
  np.testing.assert_allclose(
    tf.convert_to_tensor(outputs["branched"]), outputs["unbranched"], rtol=1e-10, atol=1e-12
  )
