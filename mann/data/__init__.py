"""Episodes for few-shot learning: types, samplers, sources and tf.data pipelines."""

from mann.data.episode import Episode
from mann.data.episode import EpisodeSampler
from mann.data.pipeline import ONE_REPLICA
from mann.data.pipeline import Shard
from mann.data.pipeline import episodes
from mann.data.pipeline import meta_batches
from mann.data.sampler import FewShotSampler
from mann.data.santoro import SequenceSampler
from mann.data.sinusoid import SinusoidSampler
from mann.data.source import ClassIndexedImages
from mann.data.source import split_classes
from mann.data.source import with_rotations

__all__ = [
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
]
