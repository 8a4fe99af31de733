"""The Omniglot zips (github.com/brendenlake/omniglot, python/ folder): what they hold,
where to find them, and the offline builder's name and version. Shared by
mann.data.omniglot (loading, splits) and mann.data.omniglot_builder (the TFDS builder),
which do not import each other's module at load time.
"""

import os
import zipfile

from mann import errors

NUM_CHARACTERS = 1623
IMAGES_PER_CHARACTER = 20
# The two archives of the full set, and what each must hold (characters, PNGs).
ZIP_CONTENTS = {
  "images_background.zip": (964, 964 * IMAGES_PER_CHARACTER),
  "images_evaluation.zip": (659, 659 * IMAGES_PER_CHARACTER),
}
# The offline builder's TFDS name and version (mann.data.omniglot_builder), which name
# its decoded cache: known here, so a cached run never imports TFDS.
LOCAL_BUILDER_NAME = "omniglot_local"
LOCAL_BUILDER_VERSION = "3.0.0"


def find_omniglot_zips(directory: str) -> dict[str, str]:
  """Paths of images_background.zip and images_evaluation.zip under `directory`.

  Looks in `directory` itself, then in its `rebuilt/` folder (the layout of
  ../shared/data/omniglot). Each archive is opened and its PNGs counted, so a
  missing, truncated or wrong file fails here, before anything is written.

  Returns:
    {"images_background.zip": path, "images_evaluation.zip": path}.
  Raises:
    UserInputError: naming the directory and the files expected.
  """
  expected = " and ".join(ZIP_CONTENTS)
  if not os.path.isdir(directory):
    raise errors.UserInputError(
      f"Omniglot directory {directory} does not exist; it must hold {expected} "
      f"(or a rebuilt/ folder with them), e.g. ../shared/data/omniglot"
    )
  found = {}
  for filename, (num_characters, num_pngs) in ZIP_CONTENTS.items():
    candidates = [os.path.join(directory, filename), os.path.join(directory, "rebuilt", filename)]
    path = next((p for p in candidates if os.path.isfile(p)), None)
    if path is None:
      raise errors.UserInputError(
        f"Omniglot directory {directory} lacks {filename}: it must hold {expected} "
        f"(or a rebuilt/ folder with them), e.g. ../shared/data/omniglot"
      )
    stem = filename[: -len(".zip")]
    try:
      with zipfile.ZipFile(path) as archive:
        pngs = [n for n in archive.namelist() if n.startswith(stem + "/") and n.endswith(".png")]
    except (zipfile.BadZipFile, OSError) as e:
      raise errors.UserInputError(
        f"{path} is not a readable zip ({e}); replace it with the original "
        f"{filename} of the Omniglot repository"
      ) from None
    characters = {os.path.dirname(n) for n in pngs}
    if (len(characters), len(pngs)) != (num_characters, num_pngs):
      raise errors.UserInputError(
        f"{path} holds {len(characters)} characters / {len(pngs)} PNGs under {stem}/, "
        f"expected {num_characters} / {num_pngs}; replace it with the full {filename}"
      )
    found[filename] = path
  return found
