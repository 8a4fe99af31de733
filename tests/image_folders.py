"""Image folders (PATH/CLASS/IMAGE) made from the Omniglot zips' PNGs, for the
folder:PATH tests."""

import os
import zipfile

import numpy as np
from PIL import Image

from mann.data import omniglot


def omniglot_image_folder(
  omniglot_dir: str, out: str, *, num_classes: int, per_class: int = 20, jpeg_classes: int = 0
) -> dict[str, list[str]]:
  """Writes the first num_classes characters of images_evaluation.zip, per_class images
  each, to out/ALPHABET_CHARACTER/NAME; the first jpeg_classes classes as RGB JPEG
  (NAME.jpg), the others as the zip's PNG bytes. Returns {class: [its file paths]}."""
  zip_path = omniglot.find_omniglot_zips(omniglot_dir)["images_evaluation.zip"]
  written: dict[str, list[str]] = {}
  with zipfile.ZipFile(zip_path) as archive:
    by_class: dict[str, list[str]] = {}
    for name in sorted(n for n in archive.namelist() if n.endswith(".png")):
      _, alphabet, character, _ = name.split("/")
      by_class.setdefault(f"{alphabet}_{character}", []).append(name)
    for index, (name, members) in enumerate(list(by_class.items())[:num_classes]):
      os.makedirs(os.path.join(out, name), exist_ok=True)
      for member in members[:per_class]:
        stem = os.path.splitext(os.path.basename(member))[0]
        if index < jpeg_classes:
          path = os.path.join(out, name, stem + ".jpg")
          with archive.open(member) as f:
            Image.open(f).convert("RGB").save(path, quality=95)
        else:
          path = os.path.join(out, name, stem + ".png")
          with open(path, "wb") as f:
            f.write(archive.read(member))
        written.setdefault(name, []).append(path)
  return written


def decoded_grey(path: str) -> np.ndarray:
  """The image file as PIL decodes it, grey (luminance), float64 [H, W]."""
  return np.asarray(Image.open(path).convert("L"), np.float64)


def area_resize_matrix(size_in, size_out):
  """[size_out, size_in]: row i averages the input span [i*s, (i+1)*s), s = in/out, each
  input pixel weighted by the length of its overlap with the span (exact area resize)."""
  scale = size_in / size_out
  starts = np.arange(size_out)[:, None] * scale
  pixel = np.arange(size_in)[None, :]
  overlap = np.minimum(starts + scale, pixel + 1) - np.maximum(starts, pixel)
  return np.clip(overlap, 0.0, None) / scale
