"""Flags of a training run (model, algorithm, optimisation) and the rules between them.

experiments/builders.py turns them into a model, a learner and an optimiser;
experiments/run_folder.py saves every flag of this module and of data_flags with a run
(WORKDIR/flags.json) and restores them, so that a run is evaluated as it was trained.
"""

from absl import flags

from experiments import data_flags
from mann import errors
from mann import meta
from mann.data import datasets
from mann.models.parameter_groups import GROUPS as WEIGHT_GROUPS

PRECISIONS = ("float32", "mixed_bfloat16")
ALGORITHMS = ("maml", "fomaml", "reptile", "transfer", "episodic")
SEQUENCE_MODELS = ("mann", "lstm")

MODEL = flags.DEFINE_enum(
  "model",
  "conv4",
  ["conv4", "mlp", "mann", "lstm"],
  "conv4: 4 conv blocks (images); mlp: ReLU MLP of --mlp_hidden_sizes (regression); "
  "mann: LSTM controller with LRUA memory (Santoro et al. 2016); lstm: the same LSTM "
  "without memory (baseline).",
)
CONTROLLER_UNITS = flags.DEFINE_integer(
  "controller_units", 200, "mann/lstm: LSTM units.", lower_bound=1
)
MEMORY_SIZE = flags.DEFINE_integer("memory_size", 128, "mann: memory rows.", lower_bound=1)
WORD_SIZE = flags.DEFINE_integer("word_size", 40, "mann: memory row width.", lower_bound=1)
NUM_READS = flags.DEFINE_integer("num_reads", 4, "mann: read (and write) heads.", lower_bound=1)
USAGE_DECAY = flags.DEFINE_float(
  "usage_decay", 0.95, "mann: gamma, usage decay per step.", lower_bound=0.0, upper_bound=1.0
)
KEY_STRENGTH = flags.DEFINE_boolean(
  "key_strength",
  False,
  "mann: learn a read sharpness beta = 1 + softplus(W h) per head "
  "(the NTM's); off: Santoro et al.'s softmax of plain cosine similarities.",
)
ZERO_READS = flags.DEFINE_boolean(
  "zero_reads",
  False,
  "mann, ablation: every read vector is zero (as read from a wiped "
  "memory), weights unchanged; e.g. evaluate a trained MANN with it to measure what its "
  "memory adds: experiments.evaluate --workdir=RUN --zero_reads --output_name=eval_zero_reads.json",
)
READS_ONLY_OUTPUT = flags.DEFINE_boolean(
  "reads_only_output",
  False,
  "mann: the output layer reads the memory's read vectors alone (not the controller's "
  "state beside them), so every prediction comes back out of the memory.",
)
SEQUENCE_ENCODER = flags.DEFINE_enum(
  "sequence_encoder",
  "pixels",
  ["pixels", "conv4"],
  "mann, lstm: what the controller reads of each image: its pixels (Santoro et al.), or "
  "conv4 features (4 conv blocks, --num_filters, --downsample) trained with it.",
)
DOWNSAMPLE = flags.DEFINE_enum(
  "downsample",
  "stride",
  ["stride", "max_pool"],
  "conv4 downsampling: stride-2 convs (MAML's Omniglot) or 2x2 max pool.",
)
NUM_FILTERS = flags.DEFINE_integer("num_filters", 64, "conv4 channels.", lower_bound=1)
MLP_HIDDEN_SIZES = flags.DEFINE_list(
  "mlp_hidden_sizes",
  ["40", "40"],
  "mlp: the hidden layers' widths (depth = their "
  "number; the MAML paper's sinusoid regressor is 40,40).",
)
INIT_FROM = flags.DEFINE_string(
  "init_from",
  None,
  "A run folder (experiments.train) whose latest checkpoint's model weights start this "
  "run: the weights only, no optimiser state and no step (e.g. a Santoro-trained MANN "
  "meta-trained further by MAML). The run must build the same model (the flags of "
  "ARCHITECTURE_FLAGS equal); used on the first start, a resumed run continues from its "
  "own checkpoint.",
)
# The flags that decide a model's weights and their shapes (--init_from compares them).
ARCHITECTURE_FLAGS = (
  "dataset",
  "image_size",
  "grayscale",
  "num_ways",
  "string_labels",
  "model",
  "sequence_encoder",
  "num_filters",
  "downsample",
  "mlp_hidden_sizes",
  "controller_units",
  "memory_size",
  "word_size",
  "num_reads",
  "key_strength",
  "reads_only_output",
)
ALGORITHM = flags.DEFINE_enum(
  "algorithm",
  "maml",
  list(ALGORITHMS),
  "maml: second-order MAML; fomaml: first-order MAML; reptile: Reptile (SGD inner loop); "
  "transfer: pretrain on all tasks pooled (images: over all training classes), "
  "fine-tune by SGD on the support set at test; episodic: train a sequence model (mann, "
  "lstm) end to end over episodes, no inner steps. maml, fomaml and reptile also adapt "
  "the sequence models (--protocol=few_shot; see --inner_loss).",
)
INNER_LOSS = flags.DEFINE_enum(
  "inner_loss",
  "support_sequence",
  list(meta.INNER_LOSSES),
  "maml, fomaml, reptile over mann or lstm: the support loss the inner steps descend. "
  "support_sequence: each step of the shuffled support sequence scored (in 1-shot a "
  "class is never seen before its own step: only elimination can score); "
  "support_replay: the support sequence shown twice, the second pass scored (what the "
  "memory recalls; twice support_sequence's recurrent steps). Queries are always "
  "predicted after the support sequence, under the adapted weights. Why the default: "
  "results/maml_mann_omniglot_5w1s/README.md.",
)
INNER_WEIGHTS = flags.DEFINE_enum(
  "inner_weights",
  "all",
  ["all", *WEIGHT_GROUPS],
  "maml, fomaml: which weights the inner steps adapt: all; head (the last Dense / the "
  "output layer; ANIL); controller (mann, lstm: the recurrent core without its output "
  "layer); encoder (conv4: the conv blocks; mann, lstm: the conv4 encoder). The others "
  "stay at the initialisation within a task and are still meta-learned.",
)
PRE_ADAPTATION_LOSS_WEIGHT = flags.DEFINE_float(
  "pre_adaptation_loss_weight",
  0.0,
  "maml, fomaml: a joint objective, each task's query loss after the inner steps plus "
  "this weight times its query loss before them (under the initialisation: for the MANN, "
  "what its memory alone predicts), logged as train_loss_before_adaptation and "
  "train_accuracy_before_adaptation. 0: MAML's loss.",
  lower_bound=0.0,
)
META_BATCH_SIZE = flags.DEFINE_integer(
  "meta_batch_size", 32, "T: tasks per meta-step.", lower_bound=1
)
NUM_INNER_STEPS = flags.DEFINE_integer(
  "num_inner_steps", 1, "Inner SGD steps per task in meta-training.", lower_bound=0
)
NUM_EVAL_INNER_STEPS = flags.DEFINE_integer(
  "num_eval_inner_steps", 3, "Inner SGD steps per task at validation and meta-test.", lower_bound=0
)
INNER_LR = flags.DEFINE_float("inner_lr", 0.4, "Inner-loop SGD learning rate.", lower_bound=0.0)
OUTER_LR = flags.DEFINE_float("outer_lr", 1e-3, "Outer (meta) learning rate.", lower_bound=0.0)
OUTER_OPTIMIZER = flags.DEFINE_enum(
  "outer_optimizer",
  "adam",
  ["adam", "sgd", "rmsprop"],
  "Outer optimiser: adam (MAML), sgd (Reptile's interpolation, step = outer_lr) or "
  "rmsprop (decay 0.95, no momentum; Santoro et al. 2016's optimiser for the MANN).",
)
INNER_OPTIMIZER = flags.DEFINE_enum(
  "inner_optimizer",
  "sgd",
  ["sgd", "adam"],
  "reptile only: the inner steps' optimiser, in training and at test. sgd at --inner_lr; "
  "adam: Nichol et al. 2018's, beta1 0, beta2 0.999, at --inner_lr (theirs 1e-3), its "
  "moments started afresh for every task.",
)
OUTER_LR_DECAY = flags.DEFINE_enum(
  "outer_lr_decay",
  "none",
  ["none", "linear"],
  "none: --outer_lr throughout; linear: the outer rate falls linearly from --outer_lr at "
  "step 0 to 0 at --num_steps (Reptile's annealed epsilon, Nichol et al. 2018; a resume "
  "with another --num_steps re-spans it).",
)
LEARN_INNER_LRS = flags.DEFINE_boolean(
  "learn_inner_lrs", False, "MAML++ LSLR: learn one inner rate per step and weight tensor."
)
MULTI_STEP_LOSS = flags.DEFINE_boolean(
  "multi_step_loss", False, "MAML++ multi-step loss, annealed to the last step."
)
NUM_STEPS = flags.DEFINE_integer("num_steps", 60000, "Meta-steps of the run.", lower_bound=1)
BATCH_NORM = flags.DEFINE_enum(
  "batch_norm",
  "transductive",
  ["transductive", "per_step", "running"],
  "transductive: batch statistics everywhere, at meta-test too (the MAML code); "
  "per_step: MAML++ running statistics per inner step, used at meta-test (maml, fomaml); "
  "running: experiments.evaluate only, the model's running statistics in every pass (as "
  "the episodic learner tests): fine-tuning an episodic run with --algorithm=maml.",
)
TASK_MAPPING = flags.DEFINE_enum(
  "task_mapping",
  "auto",
  list(meta.TASK_MAPPINGS),
  "How the tasks of a meta-batch run: batched (all tasks as one set of ops, grouped "
  "convolutions; conv4 and mlp), map_fn (tf.map_fn, any model), vectorized_map; auto: "
  "batched where the model allows it, else map_fn.",
)
CHECKPOINT_INNER_STEPS = flags.DEFINE_boolean(
  "checkpoint_inner_steps",
  False,
  "maml, fomaml: recompute each inner step in the backward pass instead of keeping its "
  "activations (gradient checkpointing: memory for many inner steps, for more time); "
  "needs --task_mapping=batched or auto (conv4, mlp, mann, lstm).",
)
SHARED_FIRST_STEP = flags.DEFINE_boolean(
  "shared_first_step",
  False,
  "maml, fomaml, reptile over conv4: run the first inner step's support pass, where "
  "every task still has the initialisation, as ordinary convolutions over all tasks' "
  "images (only the kernels' gradients per task): the same meta-gradients, faster at "
  "second order (results/performance/README.md). MAML then logs no task_update_cosine. "
  "Not with --checkpoint_inner_steps.",
)
INNER_STEP_TRACING = flags.DEFINE_enum(
  "inner_step_tracing",
  "auto",
  list(meta.INNER_STEP_TRACINGS),
  "How the inner steps are traced: loop (once, as a tf.while_loop: a graph and first "
  "trace that do not grow with the steps), unrolled (each step on its own); auto: a loop "
  "for meta-test fine-tuning and Reptile, unrolled for MAML's meta-gradient (where it is "
  "faster; results/performance/README.md).",
)
CLIP_GRAD_NORM = flags.DEFINE_float(
  "clip_grad_norm",
  0.0,
  "Clip the meta-gradients to this global norm (0: no clipping).",
  lower_bound=0.0,
)
SKIP_NONFINITE = flags.DEFINE_boolean(
  "skip_nonfinite",
  False,
  "A meta-step with a non-finite loss or meta-gradient is "
  "skipped (no update) and counted (nonfinite_skipped in log.jsonl and results.json); "
  "off: the run stops there with exit status 3, keeping its checkpoints, and may be "
  "resumed with this flag or --clip_grad_norm.",
)
MAX_SKIPPED_FRACTION = flags.DEFINE_float(
  "max_skipped_fraction",
  0.1,
  "With --skip_nonfinite: the run stops with exit status 3 once more than this fraction "
  "of its meta-steps (and more than one) were skipped; 1: never.",
  lower_bound=0.0,
  upper_bound=1.0,
)
SEED = flags.DEFINE_integer("seed", 0, "Seed of the weights and of every task drawn.")
PRECISION = flags.DEFINE_enum(
  "precision",
  "float32",
  list(PRECISIONS),
  "float32; mixed_bfloat16: Keras's mixed policy for every model (weights, the update, "
  "batch-norm statistics, the losses and the MANN's memory addressing in float32; "
  "convolutions and matmuls of the inner and outer passes in bfloat16). Where oneDNN has "
  "no bfloat16 kernels (an AVX2-only CPU), the task-batched convolutions run as float32 "
  "kernels, said at start and in results.json. Its speed and accuracy: "
  "results/performance/README.md, results/precision/README.md.",
)


def check_combination() -> None:
  """One line for flag combinations that cannot work together."""
  regression = datasets.is_regression(data_flags.DATASET.value)
  sequence_model = is_sequence_model()
  algorithm = ALGORITHM.value
  if algorithm == "episodic" and not sequence_model:
    raise errors.UserInputError("--algorithm=episodic needs --model=mann or lstm")
  if sequence_model and algorithm == "transfer":
    raise errors.UserInputError(
      "--model=mann or lstm goes with --algorithm=episodic, maml, fomaml or reptile"
    )
  if data_flags.PROTOCOL.value == "online" and not sequence_model:
    raise errors.UserInputError("--protocol=online needs --model=mann or lstm")
  if data_flags.PROTOCOL.value == "online" and algorithm != "episodic":
    raise errors.UserInputError(
      f"--protocol=online goes with --algorithm=episodic only (an online sequence has no "
      f"support set to adapt on); use --protocol=few_shot with --algorithm={algorithm}"
    )
  if regression and MODEL.value != "mlp":
    raise errors.UserInputError(f"--dataset={data_flags.DATASET.value} needs --model=mlp")
  if MODEL.value == "mlp":
    mlp_hidden_sizes()
  if (ZERO_READS.value or KEY_STRENGTH.value or READS_ONLY_OUTPUT.value) and MODEL.value != "mann":
    raise errors.UserInputError(
      "--zero_reads, --key_strength and --reads_only_output need --model=mann"
    )
  if data_flags.STRING_LABELS.value and not sequence_model:
    raise errors.UserInputError("--string_labels needs --model=mann or lstm")
  if CHECKPOINT_INNER_STEPS.value and algorithm not in ("maml", "fomaml"):
    raise errors.UserInputError("--checkpoint_inner_steps needs --algorithm=maml or fomaml")
  if SHARED_FIRST_STEP.value and (
    algorithm not in ("maml", "fomaml", "reptile")
    or MODEL.value != "conv4"
    or TASK_MAPPING.value not in ("auto", "batched")
    or CHECKPOINT_INNER_STEPS.value
  ):
    raise errors.UserInputError(
      "--shared_first_step needs --algorithm=maml, fomaml or reptile, --model=conv4, "
      "--task_mapping=batched or auto, and no --checkpoint_inner_steps"
    )
  if INNER_OPTIMIZER.value == "adam" and (algorithm != "reptile" or SHARED_FIRST_STEP.value):
    raise errors.UserInputError(
      "--inner_optimizer=adam needs --algorithm=reptile and no --shared_first_step"
    )
  if BATCH_NORM.value == "per_step" and (algorithm not in ("maml", "fomaml") or sequence_model):
    raise errors.UserInputError(
      "--batch_norm=per_step needs --algorithm=maml or fomaml over conv4 or mlp"
    )
  if LEARN_INNER_LRS.value and NUM_INNER_STEPS.value < 1:
    raise errors.UserInputError(
      "--learn_inner_lrs learns a rate per inner step: give --num_inner_steps=1 or more"
    )
  if TASK_MAPPING.value == "vectorized_map" and sequence_model:
    raise errors.UserInputError(
      f"--task_mapping=vectorized_map cannot vectorise --model={MODEL.value} (pfor has no "
      f"rule for its recurrent loop); use --task_mapping=map_fn or auto"
    )
  for flag in (LEARN_INNER_LRS, MULTI_STEP_LOSS):
    if flag.value and algorithm not in ("maml", "fomaml"):
      raise errors.UserInputError(
        f"--{flag.name} (MAML++) needs --algorithm=maml or fomaml, not {algorithm}"
      )
  if INNER_WEIGHTS.value != "all" and algorithm not in ("maml", "fomaml"):
    raise errors.UserInputError(
      f"--inner_weights={INNER_WEIGHTS.value} needs --algorithm=maml or fomaml, not "
      f"{algorithm} (only those adapt a chosen subset of the weights; reptile moves the "
      f"initialisation toward the adapted weights, so weights that do not adapt would "
      f"never move)"
    )
  if PRE_ADAPTATION_LOSS_WEIGHT.value and algorithm not in ("maml", "fomaml"):
    raise errors.UserInputError(
      f"--pre_adaptation_loss_weight needs --algorithm=maml or fomaml, not {algorithm}"
    )
  if not regression and MODEL.value == "mlp":
    raise errors.UserInputError(
      f"--model=mlp takes vectors; use --model=conv4 for {data_flags.DATASET.value}"
    )


def mlp_hidden_sizes() -> tuple[int, ...]:
  """--mlp_hidden_sizes as ints; one line for a bad value."""
  try:
    sizes = tuple(int(s) for s in MLP_HIDDEN_SIZES.value)
  except ValueError:
    sizes = ()
  if not sizes or min(sizes) < 1:
    raise errors.UserInputError(
      f"--mlp_hidden_sizes={','.join(MLP_HIDDEN_SIZES.value)} must be positive integers, e.g. 40,40"
    )
  return sizes


def is_sequence_model() -> bool:
  """A model that reads an episode one example at a time (mann, lstm)."""
  return MODEL.value in SEQUENCE_MODELS
