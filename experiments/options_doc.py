r"""Writes docs/options.md, every binary's flags, from their definitions.

  python3 -m experiments.options_doc --out=docs/options.md
  python3 -m experiments.options_doc --check   # exit 2 if docs/options.md is stale

Each binary of experiments/ is imported in turn and its flags read from absl's registry:
its own, and those of the shared flag modules it imports (data_flags, run_flags), which
the page lists once. Two binaries may define one flag name differently, so experiments'
flags leave the registry, and their modules sys.modules, before the next is imported.
"""

import importlib
import pathlib
import sys

from absl import app
from absl import flags

from experiments import common
from mann import errors
from mann import files

# Its own flags live apart from absl's registry, which holds the flags the page lists (five
# binaries define an --out of their own).
_OWN_FLAGS = flags.FlagValues()
OUT = flags.DEFINE_string(
  "out", "docs/options.md", "Where to write the page.", flag_values=_OWN_FLAGS
)
CHECK = flags.DEFINE_bool(
  "check",
  False,
  "Write nothing; exit 2 if --out differs from what would be written.",
  flag_values=_OWN_FLAGS,
)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# The modules whose flags several binaries share, in the order the page lists them.
SHARED_FLAG_MODULES = ("experiments.data_flags", "experiments.run_flags")
_GENERATOR = "experiments.options_doc"


def binary_modules() -> list[str]:
  """experiments' modules that run as binaries (`python3 -m experiments.NAME`), by name."""
  return sorted(
    f"experiments.{path.stem}"
    for path in (REPO_ROOT / "experiments").glob("*.py")
    if 'if __name__ == "__main__"' in path.read_text() and f"experiments.{path.stem}" != _GENERATOR
  )


def _shown_default(flag: flags.Flag) -> str:
  if flag.default is None:
    return "(none)"
  if isinstance(flag.default, bool):
    return str(flag.default).lower()
  if isinstance(flag.default, (list, tuple)):
    return ",".join(str(item) for item in flag.default) or "(empty)"
  return str(flag.default) if flag.default != "" else '""'


def _rows(flag_list: list[flags.Flag]) -> list[str]:
  rows = ["| flag | default | what it is |", "|---|---|---|"]
  for flag in sorted(flag_list, key=lambda f: f.name):
    text = " ".join(flag.help.split()).replace("|", "\\|")
    default = _shown_default(flag).replace("|", "\\|")
    rows.append(f"| `--{flag.name}` | `{default}` | {text} |")
  return rows


def _summary(module) -> str:
  """The first paragraph of a module's docstring, on one line."""
  doc = (module.__doc__ or "").strip().split("\n\n")[0]
  return " ".join(doc.split())


def _forget_flag_modules(registry: flags.FlagValues) -> None:
  """Takes the flags of experiments' modules out of the registry and the modules out of
  sys.modules, so that the next binary imports its own definitions afresh."""
  for module_name, flag_list in list(registry.flags_by_module_dict().items()):
    if module_name.startswith("experiments.") and module_name != _GENERATOR:
      for flag in list(flag_list):  # each delattr shortens the registry's list
        if flag.name in registry:
          delattr(registry, flag.name)
      sys.modules.pop(module_name, None)
      # `from experiments import X` reads the package's attribute before sys.modules.
      vars(sys.modules["experiments"]).pop(module_name.split(".", 1)[1], None)


def page() -> str:
  """The text of docs/options.md."""
  registry = flags.FLAGS
  own: dict[str, list[flags.Flag]] = {}
  uses: dict[str, list[str]] = {}
  summaries: dict[str, str] = {}
  shared: dict[str, list[flags.Flag]] = {}
  for name in binary_modules():
    module = importlib.import_module(name)
    by_module = registry.flags_by_module_dict()
    own[name] = list(by_module.get(name, []))
    uses[name] = [m for m in SHARED_FLAG_MODULES if by_module.get(m)]
    for shared_name in uses[name]:
      shared.setdefault(shared_name, list(by_module[shared_name]))
    summaries[name] = _summary(module)
    _forget_flag_modules(registry)
  lines = [
    "# Options",
    "",
    "Every flag of every binary, generated from the flag definitions by",
    "`python3 -m experiments.options_doc` (tests/experiments/options_doc_test.py fails when",
    "this page is stale). A binary's `--helpfull` says the same. Flagfiles that set a",
    "recipe are in `experiments/configs/`.",
    "",
  ]
  for shared_name in SHARED_FLAG_MODULES:
    if shared_name in shared:
      users = ", ".join(f"`{n.split('.')[-1]}`" for n in own if shared_name in uses[n])
      lines += [f"## Shared: `{shared_name}`", "", f"Read by {users}.", ""]
      lines += _rows(shared[shared_name]) + [""]
  for name, flag_list in own.items():
    lines += [f"## `python3 -m {name}`", "", summaries[name], ""]
    if uses[name]:
      links = [f"[`{m}`](#shared-{m.replace('.', '')})" for m in uses[name]]
      lines += ["It also reads the shared flags of " + " and ".join(links) + ".", ""]
    lines += _rows(flag_list) + [""]
  return "\n".join(lines)


def _parse(argv: list[str]) -> list[str]:
  if any(arg in ("-h", "--help", "--helpshort", "--helpfull") for arg in argv[1:]):
    print(__doc__ + "\n" + _OWN_FLAGS.get_help())
    sys.exit(0)
  try:
    rest = _OWN_FLAGS(argv)
  except flags.Error as e:
    print(f"error: {e} (see --help for the flags)", file=sys.stderr)
    sys.exit(2)
  flags.FLAGS(rest[:1])  # absl's own flags at their defaults, as app.run expects
  return rest


def main(argv):
  del argv
  text = page()
  out = pathlib.Path(OUT.value)
  if CHECK.value:
    current = out.read_text() if out.is_file() else None
    if current != text:
      raise errors.UserInputError(
        f"{out} is stale: run python3 -m experiments.options_doc --out={out}"
      )
    return
  with files.atomic_write(str(out)) as tmp_path:
    pathlib.Path(tmp_path).write_text(text)
  rows = [line for line in text.splitlines() if line.startswith("| `--")]
  print(f"wrote {out}: {len(rows)} flags")


if __name__ == "__main__":
  app.run(lambda argv: common.run_main(main, argv), flags_parser=_parse)
