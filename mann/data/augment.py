"""Per-image random translation and rotation (Santoro et al. 2016's augmentation).

Santoro et al. augment Omniglot "by randomly translating and rotating character
images" (and make new classes of 90-degree rotations, mann.data.source). The paper
gives no magnitudes: max_shift (pixels) and max_degrees are ours to set, 0 = off.
"""

import math
import typing

import tensorflow as tf

from mann import errors


class Augmentation(typing.NamedTuple):
  """Each image is rotated by U[-max_degrees, max_degrees] about its centre and shifted
  by whole pixels drawn from U{-max_shift..max_shift} in x and y; what moves out of the
  frame is lost, what comes in is background (0).

  shear and scale distort every image by the same fixed amount (an out-of-distribution
  test set, Finn & Levine 2018): about the centre, x += shear * y, then both axes times
  scale, before any random rotation and shift.
  """

  max_shift: int = 0
  max_degrees: float = 0.0
  shear: float = 0.0
  scale: float = 1.0

  @property
  def active(self) -> bool:
    return self.max_shift > 0 or self.max_degrees > 0 or self.shear != 0 or self.scale != 1


def parse_distortion(spec: str) -> Augmentation:
  """'shear=0.5,scale=0.75' (either or both) -> the fixed distortion Augmentation."""
  values: dict[str, float] = {}
  for part in spec.split(","):
    name, _, value = part.partition("=")
    name = name.strip()
    try:
      if name not in ("shear", "scale") or name in values:
        raise ValueError
      values[name] = float(value)
    except ValueError:
      raise errors.UserInputError(
        f"--eval_transform={spec}: expected shear=S and/or scale=Z, e.g. shear=0.5,scale=0.75"
      ) from None
  if values.get("scale", 1.0) <= 0:
    raise errors.UserInputError(f"--eval_transform={spec}: scale must be > 0")
  return Augmentation(shear=values.get("shear", 0.0), scale=values.get("scale", 1.0))


def transform(
  images: tf.Tensor, shifts: tf.Tensor, radians: tf.Tensor, shear: float = 0.0, scale: float = 1.0
) -> tf.Tensor:
  """Shears and scales, rotates, then shifts each image: images [B, H, W, C], shifts
  [B, 2] (dx, dy, pixels; +dx moves the content right, +dy down), radians [B]
  (counter-clockwise on screen), shear and scale as Augmentation's. Bilinear, zero
  fill. Returns [B, H, W, C]."""
  height, width = images.shape[1], images.shape[2]
  center_x, center_y = (width - 1) / 2.0, (height - 1) / 2.0
  cos, sin = tf.cos(radians), tf.sin(radians)
  dx, dy = shifts[:, 0], shifts[:, 1]
  # Output pixel (x, y) samples input point (a0 x + a1 y + a2, b0 x + b1 y + b2): the
  # inverse of "distort, rotate about the centre, then shift". With y pointing down, a
  # counter-clockwise turn on screen by r maps the offset (u, v) to
  # (u cos r + v sin r, -u sin r + v cos r), whose inverse is the transpose; the
  # distortion D = scale [[1, shear], [0, 1]] has inverse [[1, -shear], [0, 1]] / scale.
  # The sampled offset is D^-1 R^-1 (output offset - shift).
  m00, m01 = (cos - shear * sin) / scale, (-sin - shear * cos) / scale
  m10, m11 = sin / scale, cos / scale
  u0, v0 = -center_x - dx, -center_y - dy
  a0, a1, a2 = m00, m01, m00 * u0 + m01 * v0 + center_x
  b0, b1, b2 = m10, m11, m10 * u0 + m11 * v0 + center_y
  zeros = tf.zeros_like(cos)
  matrices = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
  return tf.raw_ops.ImageProjectiveTransformV3(
    images=images,
    transforms=tf.cast(matrices, tf.float32),
    output_shape=tf.constant([height, width], tf.int32),
    fill_value=0.0,
    interpolation="BILINEAR",
    fill_mode="CONSTANT",
  )


def random_transform(images: tf.Tensor, augmentation: Augmentation, seed: tf.Tensor) -> tf.Tensor:
  """`transform` with shifts and angles drawn from `seed` (a stateless [2] seed):
  the same seed, the same images. images [B, H, W, C] -> [B, H, W, C]."""
  if not augmentation.active:
    return images
  batch = tf.shape(images)[0]
  shift_seed, angle_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
  shifts = tf.random.stateless_uniform(
    [batch, 2],
    shift_seed,
    minval=-augmentation.max_shift,
    maxval=augmentation.max_shift + 1,
    dtype=tf.int32,
  )
  limit = augmentation.max_degrees * math.pi / 180.0
  radians = tf.random.stateless_uniform([batch], angle_seed, minval=-limit, maxval=limit)
  return transform(
    images, tf.cast(shifts, tf.float32), radians, shear=augmentation.shear, scale=augmentation.scale
  )
