"""Vector indexes: faiss, exact for small memories and HNSW above a size threshold."""

from memkit.vectors.faiss_index import FaissIndex

__all__ = ["FaissIndex"]
