"""Flags of a training run (model, algorithm, optimisation) and the builders they feed.

train.py writes every flag of this module and of data_flags to WORKDIR/flags.json;
evaluate.py reads them back, so that a run is evaluated as it was trained.
"""

import json
import os

from absl import flags
import keras
import numpy as np

from experiments import data_flags
from mann import errors
from mann import files
from mann import meta
from mann import models
from mann import training
from mann.data import augment
from mann.data import datasets
from mann.data import santoro
from mann.models.parameter_groups import GROUPS as WEIGHT_GROUPS

ALGORITHMS = ("maml", "fomaml", "reptile", "transfer", "episodic")
SEQUENCE_MODELS = ("mann", "lstm")

MODEL = flags.DEFINE_enum(
    "model", "conv4", ["conv4", "mlp", "mann", "lstm"],
    "conv4: 4 conv blocks (images); mlp: ReLU MLP of --mlp_hidden_sizes (regression); "
    "mann: LSTM controller with LRUA memory (Santoro et al. 2016); lstm: the same LSTM "
    "without memory (baseline).")
CONTROLLER_UNITS = flags.DEFINE_integer("controller_units", 200,
                                        "mann/lstm: LSTM units.", lower_bound=1)
MEMORY_SIZE = flags.DEFINE_integer("memory_size", 128, "mann: memory rows.", lower_bound=1)
WORD_SIZE = flags.DEFINE_integer("word_size", 40, "mann: memory row width.", lower_bound=1)
NUM_READS = flags.DEFINE_integer("num_reads", 4, "mann: read (and write) heads.",
                                 lower_bound=1)
USAGE_DECAY = flags.DEFINE_float("usage_decay", 0.95, "mann: gamma, usage decay per step.",
                                  lower_bound=0.0, upper_bound=1.0)
KEY_STRENGTH = flags.DEFINE_boolean(
    "key_strength", False, "mann: learn a read sharpness beta = 1 + softplus(W h) per head "
    "(the NTM's); off: Santoro et al.'s softmax of plain cosine similarities.")
ZERO_READS = flags.DEFINE_boolean(
    "zero_reads", False, "mann, ablation: every read vector is zero (as read from a wiped "
    "memory), weights unchanged; e.g. evaluate a trained MANN with it to measure what its "
    "memory adds: experiments.evaluate --workdir=RUN --zero_reads --output_name=eval_zero_reads.json")
SEQUENCE_ENCODER = flags.DEFINE_enum(
    "sequence_encoder", "pixels", ["pixels", "conv4"],
    "mann, lstm: what the controller reads of each image: its pixels (Santoro et al.), or "
    "conv4 features (4 conv blocks, --num_filters, --downsample) trained with it.")
DOWNSAMPLE = flags.DEFINE_enum("downsample", "stride", ["stride", "max_pool"],
                               "conv4 downsampling: stride-2 convs (MAML's Omniglot) or 2x2 max pool.")
NUM_FILTERS = flags.DEFINE_integer("num_filters", 64, "conv4 channels.", lower_bound=1)
MLP_HIDDEN_SIZES = flags.DEFINE_list(
    "mlp_hidden_sizes", ["40", "40"], "mlp: the hidden layers' widths (depth = their "
    "number; the MAML paper's sinusoid regressor is 40,40).")
ALGORITHM = flags.DEFINE_enum(
    "algorithm", "maml", list(ALGORITHMS),
    "maml: second-order MAML; fomaml: first-order MAML; reptile: Reptile (SGD inner loop); "
    "transfer: pretrain on all tasks pooled (images: over all training classes), "
    "fine-tune by SGD on the support set at test; episodic: train a sequence model (mann, "
    "lstm) end to end over episodes, no inner steps. maml, fomaml and reptile also adapt "
    "the sequence models (--protocol=few_shot; see --inner_loss).")
INNER_LOSS = flags.DEFINE_enum(
    "inner_loss", "support_sequence", list(meta.INNER_LOSSES),
    "maml, fomaml, reptile over mann or lstm: the support loss the inner steps descend. "
    "support_sequence: each step of the shuffled support sequence scored (in 1-shot a "
    "class is never seen before its own step: only elimination can score); "
    "support_replay: the support sequence shown twice, the second pass scored (what the "
    "memory recalls). Measured, MAML over the MANN, Omniglot 5w1s "
    "(maml_mann_omniglot_5w1s.flags), validation accuracy on 200 tasks after 250 / 500 "
    "meta-steps: support_sequence 82.1 +- 2.3 / 88.7 +- 1.9 %, support_replay 79.7 +- 2.3 / "
    "88.1 +- 1.9 %: no difference beyond the intervals, and support_sequence runs half the "
    "recurrent steps per inner step, hence the default. Queries are always predicted "
    "after the support sequence, under the adapted weights.")
INNER_WEIGHTS = flags.DEFINE_enum(
    "inner_weights", "all", ["all", *WEIGHT_GROUPS],
    "maml, fomaml: which weights the inner steps adapt: all; head (the last Dense / the "
    "output layer; ANIL); controller (mann, lstm: the recurrent core without its output "
    "layer); encoder (conv4: the conv blocks; mann, lstm: the conv4 encoder). The others "
    "stay at the initialisation within a task and are still meta-learned.")
META_BATCH_SIZE = flags.DEFINE_integer("meta_batch_size", 32, "T: tasks per meta-step.",
                                       lower_bound=1)
NUM_INNER_STEPS = flags.DEFINE_integer("num_inner_steps", 1,
                                       "Inner SGD steps per task in meta-training.",
                                       lower_bound=0)
NUM_EVAL_INNER_STEPS = flags.DEFINE_integer(
    "num_eval_inner_steps", 3, "Inner SGD steps per task at validation and meta-test.",
    lower_bound=0)
INNER_LR = flags.DEFINE_float("inner_lr", 0.4, "Inner-loop SGD learning rate.",
                              lower_bound=0.0)
OUTER_LR = flags.DEFINE_float("outer_lr", 1e-3, "Outer (meta) learning rate.",
                              lower_bound=0.0)
OUTER_OPTIMIZER = flags.DEFINE_enum(
    "outer_optimizer", "adam", ["adam", "sgd"],
    "Outer optimiser: adam (MAML) or sgd (Reptile's interpolation, step = outer_lr).")
LEARN_INNER_LRS = flags.DEFINE_boolean(
    "learn_inner_lrs", False, "MAML++ LSLR: learn one inner rate per step and weight tensor.")
MULTI_STEP_LOSS = flags.DEFINE_boolean(
    "multi_step_loss", False, "MAML++ multi-step loss, annealed to the last step.")
NUM_STEPS = flags.DEFINE_integer("num_steps", 60000, "Meta-steps of the run.", lower_bound=1)
BATCH_NORM = flags.DEFINE_enum(
    "batch_norm", "transductive", ["transductive", "per_step", "running"],
    "transductive: batch statistics everywhere, at meta-test too (the MAML code); "
    "per_step: MAML++ running statistics per inner step, used at meta-test (maml, fomaml); "
    "running: experiments.evaluate only, the model's running statistics in every pass (as "
    "the episodic learner tests): fine-tuning an episodic run with --algorithm=maml.")
TASK_MAPPING = flags.DEFINE_enum(
    "task_mapping", "auto", list(meta.TASK_MAPPINGS),
    "How the tasks of a meta-batch run: batched (all tasks as one set of ops, grouped "
    "convolutions; conv4 and mlp), map_fn (tf.map_fn, any model), vectorized_map; auto: "
    "batched where the model allows it, else map_fn.")
CHECKPOINT_INNER_STEPS = flags.DEFINE_boolean(
    "checkpoint_inner_steps", False,
    "maml, fomaml: recompute each inner step in the backward pass instead of keeping its "
    "activations (gradient checkpointing: memory for many inner steps, for more time); "
    "needs --task_mapping=batched or auto with conv4/mlp.")
CLIP_GRAD_NORM = flags.DEFINE_float(
    "clip_grad_norm", 0.0, "Clip the meta-gradients to this global norm (0: no clipping).",
    lower_bound=0.0)
SKIP_NONFINITE = flags.DEFINE_boolean(
    "skip_nonfinite", False, "A meta-step with a non-finite loss or meta-gradient is "
    "skipped (no update) and counted (nonfinite_skipped in log.jsonl and results.json); "
    "off: the run stops there with exit status 3, keeping its checkpoints, and may be "
    "resumed with this flag or --clip_grad_norm.")
SEED = flags.DEFINE_integer("seed", 0, "Seed of the weights and of every task drawn.")

# Flags that define a run; train.py saves them, evaluate.py restores them.
RUN_FLAG_MODULES = ("experiments.data_flags", "experiments.run_flags")
FLAGS_FILE = "flags.json"
# Run flags a resumed or evaluated run may change: the step budget, and where the data lie
# (not what they are), so a workdir moves between machines; flags.json holds the latest.
# The divergence guards too, so that a run stopped by a non-finite step resumes with them.
FLAGS_FREE_ACROSS_RESUMES = ("num_steps", "data_dir", "omniglot_dir", "clip_grad_norm",
                             "skip_nonfinite")


def run_flag_values() -> dict:
  """{flag name: value} of every flag that defines the run."""
  values = {}
  for module in RUN_FLAG_MODULES:
    for flag in flags.FLAGS.get_flags_for_module(module):
      values[flag.name] = flag.value
  return values


def check_run_flags(workdir: str) -> None:
  """Refuses a workdir that holds a run with other settings (one line); reads only."""
  path = os.path.join(workdir, FLAGS_FILE)
  if not os.path.exists(path):
    return
  with open(path) as f:
    saved = json.load(f)
  values = run_flag_values()
  changed = sorted(k for k in values if k in saved and saved[k] != values[k]
                   and k not in FLAGS_FREE_ACROSS_RESUMES)
  if changed:
    raise errors.UserInputError(
        f"workdir {workdir} holds a run with other settings ({', '.join(changed)}); "
        f"use a new --workdir, or the same flags to resume it")


def save_run_flags(workdir: str) -> None:
  """Writes the run's flags to workdir (created if missing); refuses a workdir of a
  different run. Call it once the data and model are known to be good, so that a
  failed first start leaves nothing behind."""
  check_run_flags(workdir)
  try:
    os.makedirs(workdir, exist_ok=True)
    files.write_json(os.path.join(workdir, FLAGS_FILE), run_flag_values(), sort_keys=True)
  except OSError as e:
    raise errors.UserInputError(
        f"cannot write to --workdir={workdir} ({e.strerror}); choose a folder you can "
        f"write to") from None


def restore_run_flags(workdir: str) -> dict:
  """Sets every run flag not given on the command line to the value saved in workdir.

  Returns the overrides: {name: value} of the saved flags given on the command line with
  another value (e.g. {"zero_reads": True}), for the report to say how it differs from
  the run.
  """
  path = os.path.join(workdir, FLAGS_FILE)
  if not os.path.exists(path):
    raise errors.UserInputError(
        f"{path} not found: --workdir must be the folder of a run made by experiments.train")
  with open(path) as f:
    saved = json.load(f)
  overrides = {}
  for name, value in saved.items():
    if name not in flags.FLAGS:
      continue
    if not flags.FLAGS[name].present:
      flags.FLAGS[name].value = value
    elif flags.FLAGS[name].value != value and name not in FLAGS_FREE_ACROSS_RESUMES:
      overrides[name] = flags.FLAGS[name].value
  # A flag newer than the run: the run had its default; given otherwise, it overrides.
  for name, value in run_flag_values().items():
    flag = flags.FLAGS[name]
    if (name not in saved and flag.present and value != flag.default
        and name not in FLAGS_FREE_ACROSS_RESUMES):
      overrides[name] = value
  return overrides


def load_trained_run(workdir: str, *, split: str,
                     distortion: augment.Augmentation = augment.Augmentation()):
  """A trained run as it was trained: its flags (those given on the command line win),
  the sampler of `split` (its images distorted by `distortion`), the learner with its
  latest checkpoint.

  Returns (learner, sampler, checkpoint_step, overrides); overrides as restore_run_flags.
  """
  overrides = restore_run_flags(workdir)
  check_combination()
  splits = data_flags.class_splits()
  sampler = make_sampler(splits, split=split, distortion=distortion)
  learner = make_learner(make_model(sampler), splits)
  try:
    checkpoint_step = training.restore_latest(workdir, learner)
  except FileNotFoundError as e:
    raise errors.UserInputError(f"{e}: train the run first (experiments.train)") from None
  except (ValueError, AssertionError) as e:  # weights of other shapes, or missing ones
    given = ", ".join(f"--{k}" for k in overrides) or "none"
    raise errors.UserInputError(
        f"the checkpoint in {workdir} does not fit the model these flags build "
        f"({str(e).splitlines()[0][:160]}); flags given that differ from the run's: "
        f"{given}; drop those that change the model or the episode shapes") from None
  return learner, sampler, checkpoint_step, overrides


def check_combination() -> None:
  """One line for flag combinations that cannot work together."""
  regression = datasets.is_regression(data_flags.DATASET.value)
  sequence_model = is_sequence_model()
  algorithm = ALGORITHM.value
  if algorithm == "episodic" and not sequence_model:
    raise errors.UserInputError("--algorithm=episodic needs --model=mann or lstm")
  if sequence_model and algorithm == "transfer":
    raise errors.UserInputError(
        "--model=mann or lstm goes with --algorithm=episodic, maml, fomaml or reptile")
  if data_flags.PROTOCOL.value == "online" and not sequence_model:
    raise errors.UserInputError("--protocol=online needs --model=mann or lstm")
  if data_flags.PROTOCOL.value == "online" and algorithm != "episodic":
    raise errors.UserInputError(
        f"--protocol=online goes with --algorithm=episodic only (an online sequence has no "
        f"support set to adapt on); use --protocol=few_shot with --algorithm={algorithm}")
  if regression and MODEL.value != "mlp":
    raise errors.UserInputError(f"--dataset={data_flags.DATASET.value} needs --model=mlp")
  if MODEL.value == "mlp":
    mlp_hidden_sizes()
  if (ZERO_READS.value or KEY_STRENGTH.value) and MODEL.value != "mann":
    raise errors.UserInputError("--zero_reads and --key_strength need --model=mann")
  if data_flags.STRING_LABELS.value and not sequence_model:
    raise errors.UserInputError("--string_labels needs --model=mann or lstm")
  if CHECKPOINT_INNER_STEPS.value and algorithm not in ("maml", "fomaml"):
    raise errors.UserInputError("--checkpoint_inner_steps needs --algorithm=maml or fomaml")
  if CHECKPOINT_INNER_STEPS.value and TASK_MAPPING.value in ("map_fn", "vectorized_map"):
    raise errors.UserInputError(
        "--checkpoint_inner_steps needs --task_mapping=batched (or auto)")
  if BATCH_NORM.value == "per_step" and (algorithm not in ("maml", "fomaml")
                                         or sequence_model):
    raise errors.UserInputError(
        "--batch_norm=per_step needs --algorithm=maml or fomaml over conv4 or mlp")
  for flag in (LEARN_INNER_LRS, MULTI_STEP_LOSS):
    if flag.value and algorithm not in ("maml", "fomaml"):
      raise errors.UserInputError(
          f"--{flag.name} (MAML++) needs --algorithm=maml or fomaml, not {algorithm}")
  if INNER_WEIGHTS.value != "all" and algorithm not in ("maml", "fomaml"):
    raise errors.UserInputError(
        f"--inner_weights={INNER_WEIGHTS.value} needs --algorithm=maml or fomaml (reptile "
        f"moves the initialisation toward the adapted weights: weights that do not adapt "
        f"would never move)")
  if not regression and MODEL.value == "mlp":
    raise errors.UserInputError(
        f"--model=mlp takes vectors; use --model=conv4 for {data_flags.DATASET.value}")


def mlp_hidden_sizes() -> tuple[int, ...]:
  """--mlp_hidden_sizes as ints; one line for a bad value."""
  try:
    sizes = tuple(int(s) for s in MLP_HIDDEN_SIZES.value)
  except ValueError:
    sizes = ()
  if not sizes or min(sizes) < 1:
    raise errors.UserInputError(
        f"--mlp_hidden_sizes={','.join(MLP_HIDDEN_SIZES.value)} must be positive integers, "
        f"e.g. 40,40")
  return sizes


def is_sequence_model() -> bool:
  """A model that reads an episode one example at a time (mann, lstm)."""
  return MODEL.value in SEQUENCE_MODELS


def make_sampler(splits, *, split: str, class_labels: bool = False,
                 distortion: augment.Augmentation = augment.Augmentation()):
  """The run's sampler of `split`, seeded by --seed; a sequence model's few-shot
  support sets come in a random order, not class by class."""
  return data_flags.make_sampler(splits, split=split, seed=SEED.value,
                                 class_labels=class_labels,
                                 shuffle_support=is_sequence_model(), distortion=distortion)


def make_model(sampler) -> keras.Model:
  """The flags' model, sized for the sampler's episodes, weights seeded by --seed."""
  keras.utils.set_random_seed(SEED.value)
  if is_sequence_model():
    labels = santoro.label_size(sampler.num_ways, data_flags.STRING_LABELS.value)
    image_shape = tuple(sampler.source.image_shape)
    input_size = int(np.prod(image_shape)) + labels
    encoder = None
    if SEQUENCE_ENCODER.value == "conv4":
      encoder = models.conv4_features(image_shape=image_shape, num_filters=NUM_FILTERS.value,
                                      downsample=DOWNSAMPLE.value)
    if MODEL.value == "lstm":
      return models.lstm(num_classes=labels, input_size=input_size,
                         units=CONTROLLER_UNITS.value, encoder=encoder, image_shape=image_shape)
    return models.mann(num_classes=labels, input_size=input_size, encoder=encoder,
                       image_shape=image_shape,
                       controller_units=CONTROLLER_UNITS.value, memory_size=MEMORY_SIZE.value,
                       word_size=WORD_SIZE.value, num_reads=NUM_READS.value,
                       usage_decay=USAGE_DECAY.value, key_strength=KEY_STRENGTH.value,
                       zero_reads=ZERO_READS.value)
  if MODEL.value == "mlp":
    return models.mlp(input_size=1, hidden_sizes=mlp_hidden_sizes(), output_size=1)
  return models.conv4(num_classes=sampler.num_ways, image_shape=sampler.source.image_shape,
                      num_filters=NUM_FILTERS.value, downsample=DOWNSAMPLE.value)


def make_learner(model: keras.Model, splits=None):
  """The flags' meta-learner over `model`; `splits` (the class splits, None for
  sinusoid) sizes the image transfer baseline's pretraining head."""
  string_labels = data_flags.STRING_LABELS.value
  if datasets.is_regression(data_flags.DATASET.value):
    objective = meta.REGRESSION
  else:
    objective = meta.STRING_CLASSIFICATION if string_labels else meta.CLASSIFICATION
  if ALGORITHM.value == "episodic":
    return meta.Episodic(model, num_classes=data_flags.NUM_WAYS.value,
                         string_labels=string_labels,
                         num_instances=data_flags.NUM_INSTANCES.value)
  common = dict(objective=objective, num_inner_steps=NUM_INNER_STEPS.value,
                inner_lr=INNER_LR.value, task_mapping=TASK_MAPPING.value)
  if is_sequence_model():
    common["task_format"] = meta.SequenceFormat(
        num_classes=data_flags.NUM_WAYS.value, string_labels=string_labels,
        inner_loss=INNER_LOSS.value)
  if ALGORITHM.value == "reptile":
    return meta.Reptile(model, **common)
  if ALGORITHM.value == "transfer":
    return meta.Transfer(model, **common, num_pretrain_classes=(
        splits["train"].num_classes if splits else None))
  try:
    adapted = models.adapted_weights(model, INNER_WEIGHTS.value)
  except ValueError as e:
    raise errors.UserInputError(f"--inner_weights={INNER_WEIGHTS.value}: {e}") from None
  return meta.MAML(model, **common, first_order=ALGORITHM.value == "fomaml",
                   batch_norm=BATCH_NORM.value,
                   learn_inner_lrs=LEARN_INNER_LRS.value,
                   multi_step_loss=MULTI_STEP_LOSS.value,
                   checkpoint_inner_steps=CHECKPOINT_INNER_STEPS.value,
                   adapted_weights=adapted)


def make_optimizer() -> keras.optimizers.Optimizer:
  if OUTER_OPTIMIZER.value == "sgd":
    return keras.optimizers.SGD(OUTER_LR.value)
  return keras.optimizers.Adam(OUTER_LR.value)
