"""Vector indexes (faiss, exact for small memories and HNSW above a size threshold) and the one
store of item vectors that every backend shares."""

from memkit.vectors.faiss_index import FaissIndex
from memkit.vectors.items import ItemVectors

__all__ = ["FaissIndex", "ItemVectors"]
