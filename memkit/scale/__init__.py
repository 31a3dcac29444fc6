"""Scale-out on existing engines: batch ingest on Ray Data (the ``[ray]`` extra).

>>> from memkit.scale import ingest_ray        # doctest: +SKIP
>>> ingest_ray("./kb", ["docs/"], workers=4)    # doctest: +SKIP
"""

from __future__ import annotations

from memkit.scale.ray_ingest import ingest_ray

__all__ = ["ingest_ray"]
