"""The run flags turned into library objects: the sampler of a split, the model, the
meta-learner, the outer optimiser. The library checks the values it is given; a
ValueError it raises becomes one line for the user (common.library_checks)."""

from typing import Any

import keras
import numpy as np

from experiments import common
from experiments import data_flags
from experiments import run_flags
from mann import meta
from mann import models
from mann import training
from mann.data import augment
from mann.data import datasets
from mann.data import labels as labels_lib


def make_sampler(
  splits,
  *,
  split: str,
  class_labels: bool = False,
  distortion: augment.Augmentation = augment.Augmentation(),
):
  """The run's sampler of `split`, seeded by --seed; a sequence model's few-shot
  support sets come in a random order, not class by class."""
  return data_flags.make_sampler(
    splits,
    split=split,
    seed=run_flags.SEED.value,
    class_labels=class_labels,
    shuffle_support=run_flags.is_sequence_model(),
    distortion=distortion,
  )


@common.library_checks("the model these flags build")
def make_model(sampler) -> keras.Model:
  """The flags' model, sized for the sampler's episodes, weights seeded by --seed, its
  layers under --precision's Keras dtype policy (a layer keeps the policy it was made
  with, so the global policy is put back afterwards)."""
  keras.utils.set_random_seed(run_flags.SEED.value)
  if run_flags.PRECISION.value == "float32":  # the policy as it is (float32 by default)
    return _make_model(sampler)
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy(run_flags.PRECISION.value)
  try:
    return _make_model(sampler)
  finally:
    keras.config.set_dtype_policy(previous)


def _make_model(sampler) -> keras.Model:
  conv4: dict[str, Any] = dict(
    num_filters=run_flags.NUM_FILTERS.value, downsample=run_flags.DOWNSAMPLE.value
  )
  if run_flags.is_sequence_model():
    labels = labels_lib.label_size(sampler.num_ways, data_flags.STRING_LABELS.value)
    image_shape = tuple(sampler.source.image_shape)
    sequence: dict[str, Any] = dict(
      num_classes=labels,
      input_size=int(np.prod(image_shape)) + labels,
      image_shape=image_shape,
      encoder=(
        models.conv4_features(image_shape=image_shape, **conv4)
        if run_flags.SEQUENCE_ENCODER.value == "conv4"
        else None
      ),
    )
    if run_flags.MODEL.value == "lstm":
      return models.lstm(**sequence, units=run_flags.CONTROLLER_UNITS.value)
    return models.mann(
      **sequence,
      controller_units=run_flags.CONTROLLER_UNITS.value,
      memory_size=run_flags.MEMORY_SIZE.value,
      word_size=run_flags.WORD_SIZE.value,
      num_reads=run_flags.NUM_READS.value,
      usage_decay=run_flags.USAGE_DECAY.value,
      key_strength=run_flags.KEY_STRENGTH.value,
      zero_reads=run_flags.ZERO_READS.value,
      reads_only_output=run_flags.READS_ONLY_OUTPUT.value,
    )
  if run_flags.MODEL.value == "mlp":
    return models.mlp(input_size=1, hidden_sizes=run_flags.mlp_hidden_sizes(), output_size=1)
  return models.conv4(num_classes=sampler.num_ways, image_shape=sampler.source.image_shape, **conv4)


@common.library_checks("the learner these flags build")
def make_learner(model: keras.Model, splits=None) -> meta.MetaLearner:
  """The flags' meta-learner over `model`; `splits` (the class splits, None for
  sinusoid) sizes the image transfer baseline's pretraining head."""
  string_labels = data_flags.STRING_LABELS.value
  algorithm = run_flags.ALGORITHM.value
  if datasets.is_regression(data_flags.DATASET.value):
    objective = meta.REGRESSION
  else:
    objective = meta.STRING_CLASSIFICATION if string_labels else meta.CLASSIFICATION
  if algorithm == "episodic":
    return meta.Episodic(
      model,
      num_classes=data_flags.NUM_WAYS.value,
      string_labels=string_labels,
      num_instances=data_flags.NUM_INSTANCES.value,
    )
  inner_loop: dict[str, Any] = dict(
    objective=objective,
    num_inner_steps=run_flags.NUM_INNER_STEPS.value,
    inner_lr=run_flags.INNER_LR.value,
    task_mapping=run_flags.TASK_MAPPING.value,
    inner_step_tracing=run_flags.INNER_STEP_TRACING.value,
  )
  if run_flags.is_sequence_model():
    inner_loop["task_format"] = meta.SequenceFormat(
      num_classes=data_flags.NUM_WAYS.value,
      string_labels=string_labels,
      inner_loss=run_flags.INNER_LOSS.value,
    )
  if algorithm == "reptile":
    return meta.Reptile(
      model,
      **inner_loop,
      shared_first_step=run_flags.SHARED_FIRST_STEP.value,
      inner_optimizer=run_flags.INNER_OPTIMIZER.value,
    )
  if algorithm == "transfer":
    return meta.Transfer(
      model, **inner_loop, num_pretrain_classes=(splits["train"].num_classes if splits else None)
    )
  return meta.MAML(
    model,
    **inner_loop,
    first_order=algorithm == "fomaml",
    batch_norm=run_flags.BATCH_NORM.value,
    learn_inner_lrs=run_flags.LEARN_INNER_LRS.value,
    multi_step_loss=run_flags.MULTI_STEP_LOSS.value,
    checkpoint_inner_steps=run_flags.CHECKPOINT_INNER_STEPS.value,
    shared_first_step=run_flags.SHARED_FIRST_STEP.value,
    adapted_weights=models.adapted_weights(model, run_flags.INNER_WEIGHTS.value),
    pre_adaptation_loss_weight=run_flags.PRE_ADAPTATION_LOSS_WEIGHT.value,
  )


def outer_optimizer(
  name: str, learning_rate: float, *, decay: str = "none", num_steps: int = 1
) -> keras.optimizers.Optimizer:
  """adam: Keras's Adam, its update fused (MAML); sgd: plain steps (Reptile); rmsprop:
  RMSProp with a 0.95 decay of its mean square and no momentum (Santoro et al. 2016 train
  the MANN with RMSProp). decay "linear": the rate falls from learning_rate at step 0 to
  0 at num_steps; "none": constant."""
  rate = learning_rate
  if decay == "linear":
    rate = keras.optimizers.schedules.PolynomialDecay(
      learning_rate, decay_steps=num_steps, end_learning_rate=0.0, power=1.0
    )
  if name == "sgd":
    return keras.optimizers.SGD(rate)
  if name == "rmsprop":
    return keras.optimizers.RMSprop(rate, rho=0.95, momentum=0.0)
  return training.FusedAdam(rate)


def make_optimizer() -> keras.optimizers.Optimizer:
  """The outer optimiser of --outer_optimizer at --outer_lr, decayed by --outer_lr_decay."""
  return outer_optimizer(
    run_flags.OUTER_OPTIMIZER.value,
    run_flags.OUTER_LR.value,
    decay=run_flags.OUTER_LR_DECAY.value,
    num_steps=run_flags.NUM_STEPS.value,
  )
