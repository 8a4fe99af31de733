"""Pure tensor functions of the MANN's external memory (Santoro et al. 2016). Imports TF only."""

from mann.memory.access import lrua_step
from mann.memory.addressing import content_weights
from mann.memory.addressing import cosine_similarity
from mann.memory.addressing import read
from mann.memory.addressing import safe_norm
from mann.memory.lrua import least_used_weights
from mann.memory.lrua import update_usage
from mann.memory.lrua import write
from mann.memory.lrua import write_weights

__all__ = [
  "content_weights",
  "cosine_similarity",
  "least_used_weights",
  "lrua_step",
  "read",
  "safe_norm",
  "update_usage",
  "write",
  "write_weights",
]
