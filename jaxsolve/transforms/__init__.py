"""Differentiable (N, d) → (N, N) transforms, training through them, and the inverse.

* Forward: :func:`pairwise_distances`, :func:`squared_distances`, :func:`gram`,
  :func:`contact_map`, and :func:`apply_pairwise` for your own per-pair ``jnp`` function.
* Large N: :func:`distance_loss` (no N×N×d) and :func:`blocked_distance_loss` (no N×N).
* Inverse: :func:`classical_mds`, :func:`refine_mds` (SMACOF / Adam, with a mask),
  :func:`mds` (both), :func:`stress`; compare coordinates with :func:`align` (Kabsch).
* Training through a transform: :class:`SequenceToCoords` (an ``nnx`` GRU → (N, 3)),
  :func:`chain_dataset`, :func:`transform_loss`, :func:`fit_through_transform`.

See ``docs/transforms.md`` and ``examples/train_through_transform.py``.
"""

from ._align import Alignment as Alignment
from ._align import align as align
from ._align import rmsd as rmsd
from ._blocked import blocked_distance_loss as blocked_distance_loss
from ._blocked import distance_loss as distance_loss
from ._distances import apply_pairwise as apply_pairwise
from ._distances import contact_map as contact_map
from ._distances import gram as gram
from ._distances import pairwise_distances as pairwise_distances
from ._distances import squared_distances as squared_distances
from ._mds import MDSResult as MDSResult
from ._mds import check_distance_matrix as check_distance_matrix
from ._mds import classical_mds as classical_mds
from ._mds import mds as mds
from ._mds import refine_mds as refine_mds
from ._mds import stress as stress
from ._sparse_mds import sparse_mds as sparse_mds
from ._training import SequenceToCoords as SequenceToCoords
from ._training import chain_dataset as chain_dataset
from ._training import fit_through_transform as fit_through_transform
from ._training import transform_loss as transform_loss

__all__ = [
    "Alignment",
    "MDSResult",
    "SequenceToCoords",
    "align",
    "apply_pairwise",
    "blocked_distance_loss",
    "chain_dataset",
    "check_distance_matrix",
    "classical_mds",
    "contact_map",
    "distance_loss",
    "fit_through_transform",
    "gram",
    "mds",
    "pairwise_distances",
    "refine_mds",
    "rmsd",
    "sparse_mds",
    "squared_distances",
    "stress",
    "transform_loss",
]
