"""Bad input to experiments.train and experiments.evaluate, one table: each case gets one
line on stderr that names the problem (and the fix), exit status 2, and leaves its
workdir as it was (a new workdir is not created). The cases of a binary run in one
process (tests/experiments/bad_input_driver.py), so TensorFlow is imported once."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests import conftest
from tests import image_folders

SINUSOID = "--flagfile=experiments/configs/maml_sinusoid.flags"
OMNIGLOT = "--flagfile=experiments/configs/maml_omniglot_5w1s.flags"

# (flags, a substring of the error line); {new}: a workdir that must not appear,
# {run}: a trained sinusoid run that must not change, {omniglot}/{tfds}: the test data.
TRAIN_CASES = [
  # First: it splits the CPU, which must come before anything initialises TensorFlow.
  (
    [
      SINUSOID,
      "--strategy=mirrored",
      "--num_cpu_devices=2",
      "--meta_batch_size=3",
      "--workdir={new}",
    ],
    "--meta_batch_size=3 does not split over 2 replicas",
  ),
  ([SINUSOID, "--num_cpu_devices=0", "--workdir={new}"], "--num_cpu_devices"),
  ([SINUSOID, "--strategy=horovod", "--workdir={new}"], "--strategy"),
  (["--dataset=sinusoid", "--model=conv4", "--workdir={new}"], "needs --model=mlp"),
  (
    [SINUSOID, "--algorithm=reptile", "--batch_norm=per_step", "--workdir={new}"],
    "needs --algorithm=maml or fomaml",
  ),
  (
    ["--model=lstm", "--algorithm=episodic", "--zero_reads", "--workdir={new}"],
    "need --model=mann",
  ),
  (
    [SINUSOID, "--task_mapping=map_fn", "--checkpoint_inner_steps", "--workdir={new}"],
    "the learner these flags build: checkpoint_inner_steps needs task_mapping='batched'",
  ),
  ([SINUSOID, "--shared_first_step", "--workdir={new}"], "--shared_first_step needs"),
  (
    [OMNIGLOT, "--shared_first_step", "--checkpoint_inner_steps", "--workdir={new}"],
    "--shared_first_step needs",
  ),
  (
    ["--model=mann", "--algorithm=maml", "--protocol=online", "--workdir={new}"],
    "--protocol=online goes with --algorithm=episodic only",
  ),
  (
    ["--model=mann", "--algorithm=transfer", "--workdir={new}"],
    "goes with --algorithm=episodic, maml",
  ),
  (
    ["--model=conv4", "--algorithm=episodic", "--workdir={new}"],
    "--algorithm=episodic needs --model=mann",
  ),
  (
    ["--model=mann", "--algorithm=reptile", "--inner_weights=head", "--workdir={new}"],
    "--inner_weights=head needs --algorithm=maml or fomaml",
  ),
  (
    [SINUSOID, "--inner_weights=controller", "--workdir={new}"],
    "the learner these flags build: mlp has no controller weights",
  ),
  (
    [SINUSOID, "--tasks_per_chunk=4", "--workdir={new}"],
    "--tasks_per_chunk: tasks_per_chunk=4 does not divide the 25 tasks",
  ),
  (
    [
      SINUSOID,
      "--algorithm=maml",
      "--batch_norm=per_step",
      "--tasks_per_chunk=5",
      "--workdir={new}",
    ],
    "--tasks_per_chunk: tasks_per_chunk cannot split this learner's meta-batches",
  ),
  ([SINUSOID, "--inner_lr=-0.1", "--workdir={new}"], "--inner_lr=-0.1"),
  ([SINUSOID, "--outer_lr=-1", "--workdir={new}"], "--outer_lr=-1"),
  (["--model=mann", "--usage_decay=1.5", "--workdir={new}"], "--usage_decay=1.5"),
  ([SINUSOID, "--num_queries=0", "--workdir={new}"], "--num_queries=0"),
  ([SINUSOID, "--algorithm=maml_plus", "--workdir={new}"], "--algorithm"),
  ([SINUSOID, "--no_such_flag=1", "--workdir={new}"], "no_such_flag"),
  (
    [SINUSOID, "--algorithm=reptile", "--learn_inner_lrs", "--workdir={new}"],
    "--learn_inner_lrs (MAML++) needs --algorithm=maml or fomaml",
  ),
  (
    ["--model=conv4", "--algorithm=transfer", "--multi_step_loss", "--workdir={new}"],
    "--multi_step_loss (MAML++) needs --algorithm=maml or fomaml",
  ),
  (
    [SINUSOID, "--mlp_hidden_sizes=40,x", "--workdir={new}"],
    "--mlp_hidden_sizes=40,x must be positive integers",
  ),
  ([SINUSOID, "--batch_norm=running", "--workdir={new}"], "is for experiments.evaluate"),
  (["--model=conv4", "--string_labels", "--workdir={new}"], "--string_labels needs"),
  (
    ["--model=conv4", "--algorithm=maml", "--protocol=online", "--workdir={new}"],
    "--protocol=online needs --model=mann or lstm",
  ),
  (["--flagfile=experiments/configs/no_such.flags", "--workdir={new}"], "no_such.flags"),
  ([SINUSOID], "--workdir"),  # required
  ([SINUSOID, "--dataset=omniglot_typo", "--workdir={new}"], "omniglot_typo"),
  ([SINUSOID, "--inner_lr=0.5", "--workdir={run}"], "holds a run with other settings"),
  ([OMNIGLOT, "--omniglot_dir={omniglot}_typo", "--data_dir={tfds}", "--workdir={new}"], "_typo"),
  (
    [OMNIGLOT, "--omniglot_dir={corrupt}", "--data_dir={new}_tfds", "--workdir={new}"],
    "is not a readable zip",
  ),
  (
    [OMNIGLOT, "--omniglot_dir={bad_member}", "--data_dir={new}_tfds", "--workdir={new}"],
    "is corrupt (Bad CRC-32); replace the zip",
  ),
  # folder:PATH (mann/data/image_folder.py).
  ([OMNIGLOT, "--dataset=folder:{new}_nowhere", "--workdir={new}"], "_nowhere does not exist"),
  (
    [OMNIGLOT, "--dataset=folder:{folder_empty}", "--data_dir={new}_tfds", "--workdir={new}"],
    "holds no class subfolder of images",
  ),
  (  # 12 classes: 2 or 3 in the validation split, fewer than 5 ways
    [OMNIGLOT, "--dataset=folder:{folder_12}", "--data_dir={new}_tfds", "--workdir={new}"],
    "num_ways=5 exceeds the",
  ),
  (
    [OMNIGLOT, "--dataset=folder:{folder_1_image}", "--data_dir={new}_tfds", "--workdir={new}"],
    "exceeds the 1 images of the smallest class",
  ),
  (
    [OMNIGLOT, "--dataset=folder:{folder_bad_image}", "--data_dir={new}_tfds", "--workdir={new}"],
    "bad.png is not a readable image",
  ),
  # The validation split holds 100 classes: the run fails after loading the data.
  (
    [
      OMNIGLOT,
      "--num_ways=150",
      "--omniglot_dir={omniglot}",
      "--data_dir={tfds}",
      "--workdir={new}",
    ],
    "150",
  ),
  ([SINUSOID, "--workdir={blocked}/run"], "cannot write to --workdir"),
  ([SINUSOID, "--keep_checkpoints_at=500,0", "--workdir={new}"], "give positive whole"),
  ([SINUSOID, "--keep_checkpoints_at=5k", "--workdir={new}"], "--keep_checkpoints_at=5k"),
  (
    [SINUSOID, "--learn_inner_lrs", "--num_inner_steps=0", "--workdir={new}"],
    "--learn_inner_lrs learns a rate per inner step",
  ),
  (
    ["--model=mann", "--task_mapping=vectorized_map", "--workdir={new}"],
    "--task_mapping=vectorized_map cannot vectorise --model=mann",
  ),
  (
    ["--model=lstm", "--task_mapping=vectorized_map", "--workdir={new}"],
    "cannot vectorise --model=lstm",
  ),
  # The run is at step 2: a smaller budget would rewrite its results and flags.
  ([SINUSOID, "--num_steps=1", "--workdir={run}"], "already at step 2, past --num_steps=1"),
  ([SINUSOID, "--workdir={bad_flags}"], "flags.json is not valid JSON"),
  ([SINUSOID, "--workdir={list_flags}"], "flags.json holds no {flag: value} object"),
  ([SINUSOID, "--workdir={checkpoints_file}"], "is a file where the run keeps its checkpoints/"),
  ([SINUSOID, "--workdir={log_folder}"], "is a folder where the run writes its log.jsonl"),
  ([SINUSOID, "--workdir={blocked}"], "is a file; give a folder"),
  (
    [SINUSOID, "--workdir={all_broken}", "--num_steps=4"],
    "every checkpoint of the run is unreadable",
  ),
]
EVALUATE_CASES = [
  (["--workdir={new}"], "flags.json"),
  (["--workdir={untrained}"], "no checkpoint in"),
  (["--workdir={run}", "--mlp_hidden_sizes=10"], "does not fit the model"),
  (["--workdir={run}", "--eval_transform=shear=oops"], "shear"),
  (["--workdir={run}", "--split=bogus"], "--split"),
  (["--workdir={run}", "--num_tasks=0"], "--num_tasks=0"),
  (["--workdir={run}", "--kept_checkpoints"], "--keep_checkpoints_at=STEP"),
  ([], "--workdir"),
  (["--workdir={broken_latest}"], "checkpoints/ckpt-2 is unreadable"),
  (["--workdir={all_broken}"], "checkpoints/ckpt-2 is unreadable"),
  (["--workdir={bad_flags}"], "flags.json is not valid JSON"),
  (["--workdir={checkpoints_file}"], "is a file where the run keeps its checkpoints/"),
  (["--workdir={blocked}"], "is a file; give a folder"),
]


def _train_sinusoid(workdir):
  subprocess.run(
    [
      sys.executable,
      "-m",
      "experiments.train",
      SINUSOID,
      f"--workdir={workdir}",
      "--num_steps=2",
      "--checkpoint_every=1",
      "--meta_batch_size=2",
      "--num_validation_tasks=0",
    ],
    cwd=conftest.REPO_ROOT,
    check=True,
    capture_output=True,
    timeout=600,
    env={**os.environ, "PYTHONPATH": str(conftest.REPO_ROOT)},
  )


def _truncate(path):
  with open(path, "r+b") as f:
    f.truncate(10)


def _folder_for(path):
  os.remove(path)
  os.mkdir(path)


def _file_for(path):
  shutil.rmtree(path)
  with open(path, "w") as f:
    f.write("a file where a folder belongs")


def _write(path, text):
  with open(path, "w") as f:
    f.write(text)


_DATA = "checkpoints/ckpt-{}.data-00000-of-00001"
# Copies of the 2-step sinusoid run (checkpoints at steps 1 and 2: --checkpoint_every=1),
# each damaged as a full disk, a torn copy or a slip of the hand would.
_DAMAGES = {
  "broken_latest": lambda run: _truncate(run / _DATA.format(2)),
  "all_broken": lambda run: [_truncate(run / _DATA.format(step)) for step in (1, 2)],
  "bad_flags": lambda run: _write(run / "flags.json", '{"num_steps": 2,'),
  "list_flags": lambda run: _write(run / "flags.json", "[1, 2]"),
  "checkpoints_file": lambda run: _file_for(run / "checkpoints"),
  "log_folder": lambda run: _folder_for(run / "log.jsonl"),
}
WATCHED = ("run", "untrained", "blocked", *_DAMAGES)


@pytest.fixture(scope="module")
def places(tmp_path_factory, omniglot_dir, tfds_data_dir, omniglot_dir_with_a_bad_member):
  root = tmp_path_factory.mktemp("bad_input")
  run = root / "run"
  _train_sinusoid(run)
  untrained = root / "untrained"
  _train_sinusoid(untrained)
  for path in (untrained / "checkpoints").iterdir():
    path.unlink()
  corrupt = root / "corrupt"
  corrupt.mkdir()
  for name in ("images_background.zip", "images_evaluation.zip"):
    (corrupt / name).write_text("not a zip")
  folders = {name: root / name for name in ("folder_empty", "folder_12", "folder_1_image")}
  (folders["folder_empty"] / "a_class").mkdir(parents=True)
  image_folders.omniglot_image_folder(omniglot_dir, str(folders["folder_12"]), num_classes=12)
  image_folders.omniglot_image_folder(
    omniglot_dir, str(folders["folder_1_image"]), num_classes=10, per_class=1
  )
  folders["folder_bad_image"] = root / "folder_bad_image"
  shutil.copytree(folders["folder_1_image"], folders["folder_bad_image"])
  first_class = sorted(os.listdir(folders["folder_bad_image"]))[0]
  (folders["folder_bad_image"] / first_class / "bad.png").write_bytes(b"\x89PNG not really")
  blocked = root / "blocked"
  blocked.write_text("a file where the workdir's parent should be")
  damaged = {}
  for name, damage in _DAMAGES.items():
    damaged[name] = root / name
    shutil.copytree(run, damaged[name])
    damage(damaged[name])
  return {
    **{name: str(path) for name, path in damaged.items()},
    "root": root,
    "run": str(run),
    "untrained": str(untrained),
    "corrupt": str(corrupt),
    "blocked": str(blocked),
    "omniglot": omniglot_dir,
    "bad_member": omniglot_dir_with_a_bad_member,
    **{name: str(path) for name, path in folders.items()},
    "tfds": tfds_data_dir,
  }


def _run_cases(binary, cases, places):
  inputs, watched = [], []
  for index, (args, _) in enumerate(cases):
    new = str(places["root"] / f"{binary}_{index}")
    fill = {**places, "new": new}
    args = [a.format(**fill) for a in args]
    watch = next((fill[k] for k in WATCHED if f"{{{k}}}" in " ".join(cases[index][0])), new)
    inputs.append({"args": args, "watch": watch})
    watched.append((watch, watch == new))
  out = places["root"] / f"{binary}_outcomes.json"
  subprocess.run(
    [sys.executable, "-m", "tests.experiments.bad_input_driver", binary, str(out)],
    input=json.dumps(inputs),
    text=True,
    cwd=conftest.REPO_ROOT,
    check=True,
    timeout=900,
    env={**os.environ, "PYTHONPATH": str(conftest.REPO_ROOT)},
  )
  with open(out) as f:
    outcomes = json.load(f)
  failures = []
  for (_, expected), case, outcome, (watch, is_new) in zip(cases, inputs, outcomes, watched):
    errors = [line for line in outcome["stderr"] if line.startswith("error:")]
    problems = []
    if outcome["status"] != 2:
      problems.append(f"exit status {outcome['status']}")
    if len(errors) != 1 or expected not in errors[0]:
      problems.append(f"error lines {errors}, expected one with {expected!r}")
    if any("Traceback" in line for line in outcome["stderr"]):
      problems.append("a traceback")
    if not outcome["unchanged"] or (is_new and os.path.exists(watch)):
      problems.append(f"{watch} written or changed")
    if problems:
      failures.append(f"{case['args']}: {'; '.join(problems)}")
  return failures


def test_every_bad_input_to_train_is_one_line_and_writes_nothing(places):
  assert len(TRAIN_CASES) + len(EVALUATE_CASES) >= 40
  assert _run_cases("train", TRAIN_CASES, places) == []


def test_every_bad_input_to_evaluate_is_one_line_and_writes_nothing(places):
  assert _run_cases("evaluate", EVALUATE_CASES, places) == []
