"""The project's docs stand alone: no README, flagfile, script or module names a
Markdown file that is not in the repository (e.g. a design note kept outside it)."""

import pathlib
import re

# The source tree itself (its real path, under Bazel too), not the runfiles.
REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

_CHECKED = (".md", ".py", ".flags", ".sh")
# A path to a .md file, not preceded by a path character.
_MARKDOWN = re.compile(r"(?<![\w/.-])[\w./-]*[\w-]+\.md\b")


def _named_markdown_files():
  """(file, name) for every .md name in the repository's text files outside tests/."""
  root = REPO_ROOT
  for path in sorted(root.rglob("*")):
    relative = path.relative_to(root)
    if ".git" in relative.parts or relative.parts[0] == "tests" or path.suffix not in _CHECKED:
      continue
    if not path.is_file():
      continue
    for match in _MARKDOWN.finditer(path.read_text(errors="ignore")):
      yield path, match.group(0)


def test_every_named_markdown_file_is_in_the_repository():
  root = REPO_ROOT
  present = {p.name for p in root.rglob("*.md") if ".git" not in p.parts}
  missing = []
  for path, name in _named_markdown_files():
    # Outputs a run writes: an absolute path, a workdir, or a placeholder folder
    # such as OUT_DIR/ or WORKDIR/.
    first = name.split("/")[0]
    if name.startswith("/") or first == "workdirs" or (first.isupper() and "/" in name):
      continue
    if "/" in name.strip("./"):
      # Resolved inside the repository only: a sibling folder of this checkout is not in it.
      found = any(
        candidate.exists() and candidate.resolve().is_relative_to(root)
        for candidate in (root / name, path.parent / name)
      )
    else:
      found = name in present
    if not found:
      missing.append(f"{path.relative_to(root)}: {name}")
  assert not missing, "docs name Markdown files the repository lacks:\n" + "\n".join(missing)


def test_the_front_pages_stay_short():
  # README.md is read in five minutes; results/README.md is an index, the stories in studies.
  for page, most in (("README.md", 100), ("results/README.md", 150)):
    lines = (REPO_ROOT / page).read_text().count("\n")
    assert lines <= most, f"{page} has {lines} lines (at most {most}): move detail to docs/"
