"""Panini: QA-network memory (generative semantic workspaces) read by beam search over QA
chains (arXiv 2602.15156). See :mod:`memkit.backends.panini.backend`."""

from memkit.backends.panini.backend import PaniniBackend
from memkit.decomposition import Decomposition, from_musique, single_hop, validate

__all__ = ["Decomposition", "PaniniBackend", "from_musique", "single_hop", "validate"]
