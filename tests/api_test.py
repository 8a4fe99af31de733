"""The public surface: each package's __all__ is what it exports, no export shadows a
module of its package, and the names are these (a change to them is a change of API)."""

import importlib
import pkgutil
import types

import pytest

PUBLIC = {
  "mann.data": [
    "ClassIndexedImages",
    "Episode",
    "episodes",
    "EpisodeSampler",
    "FewShotSampler",
    "meta_batches",
    "ONE_REPLICA",
    "SequenceSampler",
    "Shard",
    "SinusoidSampler",
    "split_classes",
    "with_rotations",
  ],
  "mann.analysis": [],
  "mann.evaluation": [
    "FEW_SHOT",
    "equivalence_test",
    "mean_and_ci95",
    "ONLINE",
    "paired_difference",
    "per_task_scores",
    "report",
    "report_line",
    "report_scalars",
    "score_tasks",
    "summarise",
    "summarise_by_instance",
    "tasks_digest",
  ],
  "mann.memory": [
    "content_weights",
    "cosine_similarity",
    "least_used_weights",
    "lrua_step",
    "read",
    "safe_norm",
    "update_usage",
    "write",
    "write_weights",
  ],
  "mann.meta": [
    "CLASSIFICATION",
    "Episodic",
    "ExampleFormat",
    "forward",
    "GradientMetaLearner",
    "INNER_LOSSES",
    "INNER_STEP_TRACINGS",
    "MAML",
    "MetaLearner",
    "REGRESSION",
    "Reptile",
    "SequenceFormat",
    "sgd_adapt",
    "STRING_CLASSIFICATION",
    "TASK_MAPPINGS",
    "TaskObjective",
    "Transfer",
  ],
  "mann.models": [
    "adapted_weights",
    "BatchNormalization",
    "conv4",
    "conv4_features",
    "lstm",
    "mann",
    "memory_cells",
    "mlp",
    "reads_zeroed",
    "weight_groups",
  ],
  "mann.training": [
    "CHECKPOINT_FOLDER",
    "FusedAdam",
    "KEPT_FOLDER",
    "checkpoint_train_seconds",
    "has_checkpoint",
    "hold_workdir",
    "keep_weights_only",
    "LOCK_FILE",
    "LOG_FILE",
    "RESULTS_FILE",
    "TENSORBOARD_FOLDER",
    "kept_checkpoints",
    "latest_step",
    "nonfinite_variables",
    "process_age_seconds",
    "restore_latest",
    "restore_model_weights",
    "state_variables",
    "train",
    "unreadable",
  ],
}


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_all_lists_the_public_names(package):
  module = importlib.import_module(package)
  assert sorted(module.__all__, key=str.lower) == sorted(PUBLIC[package], key=str.lower)
  for name in module.__all__:
    assert hasattr(module, name), f"{package}.__all__ names {name}, which it lacks"
  # Every public name the package binds, other than its own submodules, is in __all__.
  submodules = {info.name for info in pkgutil.iter_modules(module.__path__)}
  bound = {
    name
    for name, value in vars(module).items()
    if not name.startswith("_") and not isinstance(value, types.ModuleType)
  }
  assert bound - submodules == set(module.__all__)


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_no_export_shadows_a_module(package):
  module = importlib.import_module(package)
  for info in pkgutil.iter_modules(module.__path__):
    value = getattr(module, info.name, None)
    assert value is None or isinstance(value, types.ModuleType), (
      f"{package}.{info.name} is a {type(value).__name__}, hiding module "
      f"{package}.{info.name}: rename the module or the export"
    )


def test_the_root_package_lists_its_subpackages():
  import mann  # pylint: disable=g-import-not-at-top

  public = [info.name for info in pkgutil.iter_modules(mann.__path__) if info.name[0] != "_"]
  assert sorted(mann.__all__) == sorted(public)
