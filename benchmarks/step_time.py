r"""Seconds per MAML meta-step, ours and (optionally) learn2learn's, in one run.

  python -m benchmarks.step_time --out=results/step_time.json \
      [--peer_python=$HOME/.cache/mann-peers/l2l/bin/python]

MAML over the sequence models beside the conv4 step, same run (--models):

  python -m benchmarks.step_time --settings=5:1:1:32 --models=conv4,mann,lstm \
      --task_mappings=batched --out=results/step_time_sequence_models.json

The MAML paper's Omniglot setting: conv4 (64 filters of 3x3, stride 2, batch norm,
ReLU) on 28x28x1, one inner step at lr 0.4, Adam 1e-3; random inputs (a step's cost
does not depend on pixel values). Each setting (ways, shots, queries per class,
meta-batch, order) runs in a fresh subprocess, so trace time and peak memory are its
own; the peer (../shared/peers/l2l_maml_step.py) runs right after ours on the same
setting. Ours is timed with each --task_mappings (batched: all tasks as grouped
convolutions; map_fn: a per-task function mapped over the meta-batch). Prints one JSON
object: per setting, median seconds per step over --steps timed steps after one
warm-up, the first call (trace + compile + run) and, for ours, its trace alone, peak
RSS, tasks per second, and our time over the peer's.
"""

import functools
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from absl import app
from absl import flags

from benchmarks import inputs
from benchmarks import step_rows

MODELS = flags.DEFINE_list(
  "models",
  ["conv4"],
  "Models whose MAML step is timed: conv4; mann (LSTM 200 controller, "
  "memory 128 x 40, 4 reads, key strength, conv4 encoder), lstm (LSTM 200, conv4 encoder): "
  "the settings of experiments/configs/maml_mann_omniglot_5w1s.flags. Each model but "
  "conv4 gets its ratio to the conv4 step of the same mapping.",
)
INNER_LOSS = flags.DEFINE_enum(
  "inner_loss",
  "support_sequence",
  ["support_sequence", "support_replay"],
  "Inner loss of the sequence models (--models=mann, lstm).",
)
SETTINGS = flags.DEFINE_list(
  "settings",
  ["5:1:15:32", "5:1:1:32", "20:1:1:16"],
  "ways:shots:queries_per_class:meta_batch_size[:inner_steps] for each setting "
  "(inner_steps 1 unless given; the peer is timed only with 1).",
)
ORDERS = flags.DEFINE_list("orders", ["second", "first"], "second and/or first.")
PRECISIONS = flags.DEFINE_list(
  "precisions",
  ["float32"],
  "Our step's precision(s): float32, mixed_bfloat16, mixed_bfloat16_fallback (mixed "
  "bfloat16 with the grouped convolutions as float32 kernels with casts, as on a CPU "
  "without bfloat16 grouped kernels: MANN_DISABLE_BFLOAT16_GROUPED_CONV=1). Rows of "
  "float32 are ours_<mapping>, of the others ours_<mapping>_<precision>; with "
  "mixed_bfloat16 the peer is also timed under torch.autocast(bfloat16) "
  "(peer_autocast_bfloat16). Each row of ours reports its grouped_convolution forms.",
)
FALLBACK_SUFFIX = "_fallback"
ROUNDS = flags.DEFINE_integer(
  "rounds",
  1,
  "Times every row of a setting is run, all rows in turns (ours, then the peer, then "
  "again): each row reports the median over rounds of its seconds per step and first "
  "call, its largest peak RSS, and the per-round seconds (seconds_per_step_rounds).",
  lower_bound=1,
)
STEPS = flags.DEFINE_integer(
  "steps", 5, "Timed steps per setting (after one warm-up).", lower_bound=1
)
JIT_COMPILE = flags.DEFINE_boolean("jit_compile", False, "Compile our step with XLA.")
TASK_MAPPINGS = flags.DEFINE_list(
  "task_mappings",
  ["batched", "map_fn"],
  "How our step runs the tasks (mann.meta.TASK_MAPPINGS), each timed: batched "
  "(grouped convolutions) and map_fn (tf.map_fn over a per-task function); "
  "batched+checkpoint: batched with checkpoint_inner_steps (recomputed inner steps); "
  "a +chunkN suffix (batched+chunk8) computes the meta-gradients N tasks at a time "
  "(mann.meta.task_chunks: the same gradients in a fraction of the memory); "
  "+loop traces the inner steps once as a tf.while_loop (inner_step_tracing='loop'; "
  "the default, auto, unrolls MAML's differentiated steps); +shared runs the first "
  "inner step's support pass as ordinary convolutions of the shared initial kernels "
  "(shared_first_step).",
)
PEER_PYTHON = flags.DEFINE_string(
  "peer_python", None, "Python of a venv with learn2learn and PyTorch; unset: ours only."
)
PEER_SCRIPT = flags.DEFINE_string(
  "peer_script",
  os.path.join(os.path.dirname(__file__), "..", "..", "shared", "peers", "l2l_maml_step.py"),
  "The peer's timing script.",
)
PROFILE = flags.DEFINE_boolean(
  "profile",
  False,
  "Also trace our timed steps with the TF profiler and report the "
  "seconds per step of each op type (summed over TF's executor threads).",
)
OUT = flags.DEFINE_string("out", None, "Also write the JSON here.")
SINGLE = flags.DEFINE_string("single", None, "Internal: time one setting in this process.")

# Runs the peer's script as __main__, under torch.autocast(bfloat16) when asked (its convs
# and matmuls in bfloat16, PyTorch's CPU mixed precision), then prints its peak RSS.
_PEAK_RSS_SNIPPET = (
  "import contextlib, resource, runpy, sys; autocast = sys.argv[1] == 'bf16'; "
  "script = sys.argv[2]; sys.argv = sys.argv[2:]; "
  "import torch; context = (torch.autocast('cpu', dtype=torch.bfloat16) if autocast "
  "else contextlib.nullcontext()); "
  "context.__enter__(); runpy.run_path(script, run_name='__main__'); "
  "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
)


def _model_and_format(name, ways):
  """The timed model and its task format (None: examples)."""
  from mann import meta  # pylint: disable=g-import-not-at-top
  from mann import models  # pylint: disable=g-import-not-at-top

  if name == "conv4":
    return models.conv4(num_classes=ways), None
  encoder = models.conv4_features(image_shape=(28, 28, 1))
  common = dict(
    num_classes=ways, input_size=28 * 28 + ways, encoder=encoder, image_shape=(28, 28, 1)
  )
  model = models.mann(key_strength=True, **common) if name == "mann" else models.lstm(**common)
  return model, meta.SequenceFormat(num_classes=ways, inner_loss=INNER_LOSS.value)


def _time_ours(
  ways,
  shots,
  queries,
  tasks,
  inner_steps,
  order,
  task_mapping,
  steps,
  jit_compile,
  profile=False,
  model_name="conv4",
  precision="float32",
) -> dict:
  """Times our compiled meta-step in this process; returns the figures."""
  import keras  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from mann import meta  # pylint: disable=g-import-not-at-top
  from mann import training  # pylint: disable=g-import-not-at-top
  from mann.models import grouped_convolution  # pylint: disable=g-import-not-at-top

  if precision.endswith(FALLBACK_SUFFIX):  # read when the step is traced
    os.environ[grouped_convolution.DISABLE_BFLOAT16_ENV] = "1"
    precision = precision[: -len(FALLBACK_SUFFIX)]
  keras.utils.set_random_seed(0)
  keras.config.set_dtype_policy(precision)  # before the model: its layers keep it
  model, task_format = _model_and_format(model_name, ways)
  mapping, *options = task_mapping.split("+")
  checkpoint = "checkpoint" in options
  tasks_per_chunk = next((int(o[len("chunk") :]) for o in options if o.startswith("chunk")), 0)
  learner = meta.MAML(
    model,
    objective=meta.CLASSIFICATION,
    num_inner_steps=inner_steps,
    inner_lr=0.4,
    first_order=order == "first",
    task_mapping=mapping,
    checkpoint_inner_steps=checkpoint,
    task_format=task_format,
    inner_step_tracing="loop" if "loop" in options else "auto",
    shared_first_step="shared" in options,
  )
  optimizer = training.FusedAdam(1e-3)  # the binaries' Adam (experiments/builders.py)
  optimizer.build(learner.trainable_variables)
  batch = inputs.random_meta_batch(ways, shots, queries, tasks)

  @tf.function(jit_compile=jit_compile)
  def step(meta_batch):
    gradients, metrics = meta.task_chunks.compute_gradients(
      learner, meta_batch, 0, tasks_per_chunk=tasks_per_chunk
    )
    optimizer.apply(gradients, learner.trainable_variables)
    return metrics["loss"]

  start = time.perf_counter()
  step.get_concrete_function(batch)  # the trace alone; the first call reuses it
  trace = time.perf_counter() - start
  float(step(batch))
  first_call = time.perf_counter() - start  # trace, graph optimisation and the run
  float(step(batch))  # warm-up
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    float(step(batch))
    times.append(time.perf_counter() - start)
  median = statistics.median(times)
  result = {
    "seconds_per_step": median,
    "min": min(times),
    "max": max(times),
    "trace_seconds": trace,
    "first_call_seconds": first_call,
    "tasks_per_second": tasks / median,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "grouped_convolution": grouped_convolution.paths_chosen(),
  }
  # TF's FLOP counters skip a tf.while_loop's body: count the steps unrolled (traced only).
  tracing = learner.inner_step_tracing
  learner.inner_step_tracing = "unrolled"
  result["gflop_per_step"] = _graph_gflop(
    tf.function(step.python_function).get_concrete_function(batch).graph
  )
  learner.inner_step_tracing = tracing
  result["gemm_bound_seconds"] = result["gflop_per_step"] / _gemm_gflops_per_second()
  if profile:
    result["op_seconds_per_step"] = _profile_ops(lambda: float(step(batch)), steps)
  return result


def _graph_gflop(graph) -> float:
  """Floating-point operations of one run of a graph, by TF's per-op FLOP counters
  (convolutions, their gradients, matmuls, elementwise ops), in GFLOP."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
  options["output"] = "none"
  return tf.compat.v1.profiler.profile(graph, options=options).total_float_ops / 1e9


def _gemm_gflops_per_second(size=2048, repeats=10) -> float:
  """This CPU's float32 matmul rate (size x size), median of `repeats`: the step's
  arithmetic lower bound is its FLOPs over this rate."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  a = tf.random.uniform([size, size])
  matmul = tf.function(lambda: tf.reduce_sum(tf.matmul(a, a)))
  float(matmul())
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    float(matmul())
    times.append(time.perf_counter() - start)
  return 2 * size**3 / statistics.median(times) / 1e9


def _profile_ops(run_step, steps) -> dict:
  """{op type: seconds per step} over `steps` traced steps, largest first (top 15)."""
  import collections  # pylint: disable=g-import-not-at-top
  import glob  # pylint: disable=g-import-not-at-top
  import tempfile  # pylint: disable=g-import-not-at-top

  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=g-import-not-at-top

  with tempfile.TemporaryDirectory() as logdir:
    tf.profiler.experimental.start(logdir)
    for _ in range(steps):
      run_step()
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    with open(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0], "rb") as f:
      space.ParseFromString(f.read())
  totals: collections.Counter[str] = collections.Counter()
  for plane in space.planes:
    for line in plane.lines:
      if not line.name.startswith("tf_Compute"):  # the executor threads that run ops
        continue
      for event in line.events:
        name = plane.event_metadata[event.metadata_id].name  # "node_name:OpType"
        if ":" in name and "::" not in name:
          totals[name.rsplit(":", 1)[1]] += event.duration_ps * 1e-12 / steps
  return {op: round(seconds, 4) for op, seconds in totals.most_common(15)}


def _run_ours(setting, order, task_mapping, model_name="conv4", precision="float32") -> dict:
  command = [
    sys.executable,
    "-m",
    "benchmarks.step_time",
    f"--single={setting}:{order}:{task_mapping}:{model_name}:{precision}",
    f"--steps={STEPS.value}",
    f"--jit_compile={JIT_COMPILE.value}",
    f"--profile={PROFILE.value}",
    f"--inner_loss={INNER_LOSS.value}",
  ]
  result = subprocess.run(
    command, capture_output=True, text=True, cwd=os.path.join(os.path.dirname(__file__), "..")
  )
  lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
  if result.returncode != 0 or not lines:
    raise RuntimeError(
      f"our step failed on {setting} {order} {task_mapping}:\n{result.stderr[-3000:]}"
    )
  return json.loads(lines[-1])


def _run_peer(ways, shots, queries, tasks, order, autocast=False) -> dict:
  command = [
    str(PEER_PYTHON.value),
    "-c",
    _PEAK_RSS_SNIPPET,
    "bf16" if autocast else "fp32",
    PEER_SCRIPT.value,
    f"--tasks={tasks}",
    f"--ways={ways}",
    f"--shots={shots}",
    f"--query={queries}",
    f"--steps={STEPS.value}",
  ] + (["--first_order"] if order == "first" else [])
  result = subprocess.run(command, capture_output=True, text=True)
  if result.returncode != 0:
    raise RuntimeError(f"peer failed:\n{result.stderr[-3000:]}")
  fields = {}
  for line in result.stdout.splitlines():
    if line.startswith("RESULT"):
      fields.update(dict(item.split("=", 1) for item in line.split()[1:]))
    if line.startswith("PEAK_RSS_KB"):
      fields["peak_rss_kb"] = line.split()[1]
  median = float(fields["median"].rstrip("s"))
  return {
    "seconds_per_step": median,
    "first_call_seconds": float(fields["first_call"].rstrip("s")),
    "tasks_per_second": tasks / median,
    "peak_rss_mb": float(fields["peak_rss_kb"]) / 1024,
  }


def _parse_setting(setting: str) -> tuple[int, int, int, int, int]:
  """ "ways:shots:queries:tasks[:inner_steps]" -> the five integers."""
  values = [int(v) for v in setting.split(":")]
  if len(values) not in (4, 5):
    raise ValueError(f"a setting is ways:shots:queries:tasks[:inner_steps], got {setting!r}")
  ways, shots, queries, tasks, inner_steps = values + [1] * (5 - len(values))
  return ways, shots, queries, tasks, inner_steps


def main(argv):
  del argv
  if SINGLE.value:
    *setting, order, task_mapping, model_name, precision = SINGLE.value.split(":")
    ways, shots, queries, tasks, inner_steps = _parse_setting(":".join(setting))
    print(
      json.dumps(
        _time_ours(
          ways,
          shots,
          queries,
          tasks,
          inner_steps,
          order,
          task_mapping,
          STEPS.value,
          JIT_COMPILE.value,
          PROFILE.value,
          model_name,
          precision,
        )
      )
    )
    return
  if PEER_PYTHON.value and not os.path.exists(PEER_SCRIPT.value):
    print(f"error: --peer_script={PEER_SCRIPT.value} not found", file=sys.stderr)
    sys.exit(2)
  report = {
    "benchmark": "step_time",
    "command": " ".join(["python3 -m benchmarks.step_time"] + sys.argv[1:]),
    "jit_compile": JIT_COMPILE.value,
    "steps": STEPS.value,
    "rounds": ROUNDS.value,
    "cpu_count": os.cpu_count(),
    "results": [],
  }
  for setting in SETTINGS.value:
    ways, shots, queries, tasks, inner_steps = _parse_setting(setting)
    for order in ORDERS.value:
      entry = {
        "ways": ways,
        "shots": shots,
        "queries_per_class": queries,
        "meta_batch_size": tasks,
        "inner_steps": inner_steps,
        "order": order,
      }
      # Every row of this entry, run once per round in the same order: a machine that
      # drifts slows all rows alike.
      jobs = {}
      for model_name in MODELS.value:
        for mapping in TASK_MAPPINGS.value:
          key = f"ours_{mapping}" if model_name == "conv4" else f"ours_{model_name}_{mapping}"
          for precision in step_rows.precisions_with_float32(PRECISIONS.value):
            jobs[step_rows.row_key(key, precision)] = functools.partial(
              _run_ours, setting, order, mapping, model_name, precision
            )
      if PEER_PYTHON.value and inner_steps == 1 and "conv4" in MODELS.value:
        jobs["peer"] = functools.partial(_run_peer, ways, shots, queries, tasks, order)
        if "mixed_bfloat16" in PRECISIONS.value:
          jobs["peer_autocast_bfloat16"] = functools.partial(
            _run_peer, ways, shots, queries, tasks, order, autocast=True
          )
      rounds = {key: [] for key in jobs}
      for _ in range(ROUNDS.value):
        for key, job in jobs.items():
          rounds[key].append(job())
      entry.update({key: step_rows.median_over_rounds(results) for key, results in rounds.items()})
      step_rows.add_ratios(entry, MODELS.value, TASK_MAPPINGS.value, PRECISIONS.value)
      report["results"].append(entry)
      print(json.dumps(entry), file=sys.stderr, flush=True)
  sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
  from benchmarks import report as report_lib  # pylint: disable=g-import-not-at-top

  report_lib.emit(report, OUT.value)


if __name__ == "__main__":
  app.run(main)
