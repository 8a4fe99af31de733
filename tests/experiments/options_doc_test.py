"""experiments/options_doc.py: docs/options.md is what the flag definitions say."""

import pathlib

from tests import conftest
from tests.experiments import binaries

PAGE = pathlib.Path(conftest.REPO_ROOT) / "docs" / "options.md"


def test_docs_options_md_is_current():
  result = binaries.run("options_doc", "--check", f"--out={PAGE}")
  assert result.returncode == 0, result.stderr[-2000:]


def test_a_stale_page_is_one_line_and_a_rewrite_makes_it_current(tmp_path):
  stale = tmp_path / "options.md"
  stale.write_text(PAGE.read_text().replace("| `--num_ways` | `5` |", "| `--num_ways` | `6` |"))
  result = binaries.run("options_doc", "--check", f"--out={stale}")
  assert result.returncode == 2
  # The last line (a sandbox may print library warnings before it).
  assert result.stderr.strip().splitlines()[-1] == (
    f"error: {stale} is stale: run python3 -m experiments.options_doc --out={stale}"
  )
  binaries.run_ok("options_doc", f"--out={stale}")
  assert stale.read_text() == PAGE.read_text()
  assert binaries.run("options_doc", "--check", f"--out={stale}").returncode == 0


def test_every_binary_has_a_section_with_its_own_flags():
  text = PAGE.read_text()
  for name in ("train", "evaluate", "ablate", "adaptation", "universality"):
    assert f"## `python3 -m experiments.{name}`" in text
  assert "| `--num_inner_steps` |" in text and "| `--budget_steps` |" in text
