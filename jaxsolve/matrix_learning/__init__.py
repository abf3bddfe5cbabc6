"""Per-element classification of matrices with Flax ``nnx``: data, models, training, comparison.

* :func:`make_dataset` — random integer matrices (0–75) labelled by a known local rule
  (an element is 1 when it exceeds the mean of its 3×3 neighbourhood).
* :class:`FlattenMLP` — flatten → MLP → unflatten, a per-element sigmoid (multi-label).
* :class:`FullyConvNet` — a fully convolutional network that keeps the spatial layout.
* :class:`Flatten` / :class:`Unflatten` — the reshape round trip as ``nnx`` modules.
* :func:`train`, :func:`evaluate`, :func:`compare_models` — jitted training loop, per-element
  accuracy, and the side-by-side comparison.
"""

from ._data import MatrixDataset as MatrixDataset
from ._data import local_rule_labels as local_rule_labels
from ._data import make_dataset as make_dataset
from ._data import neighbourhood_sum as neighbourhood_sum
from ._models import Flatten as Flatten
from ._models import FlattenMLP as FlattenMLP
from ._models import FullyConvNet as FullyConvNet
from ._models import Unflatten as Unflatten
from ._models import predict as predict
from ._train import DEFAULT_SPECS as DEFAULT_SPECS
from ._train import Evaluation as Evaluation
from ._train import ModelReport as ModelReport
from ._train import ModelSpec as ModelSpec
from ._train import TrainResult as TrainResult
from ._train import bce_loss as bce_loss
from ._train import compare_models as compare_models
from ._train import count_params as count_params
from ._train import evaluate as evaluate
from ._train import train as train

__all__ = [
    "DEFAULT_SPECS",
    "Evaluation",
    "Flatten",
    "FlattenMLP",
    "FullyConvNet",
    "MatrixDataset",
    "ModelReport",
    "ModelSpec",
    "TrainResult",
    "Unflatten",
    "bce_loss",
    "compare_models",
    "count_params",
    "evaluate",
    "local_rule_labels",
    "make_dataset",
    "neighbourhood_sum",
    "predict",
    "train",
]
