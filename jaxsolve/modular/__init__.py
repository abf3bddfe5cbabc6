"""The ``w mod m`` study: modular weight maps, an MLP that uses them, and why it stops learning.

See ``docs/modular.md`` for the question, the measurements and the fixes.
"""

from ._data import DATASETS as DATASETS
from ._data import Dataset as Dataset
from ._data import load_dataset as load_dataset
from ._maps import MOD_MAPS as MOD_MAPS
from ._maps import centred_mod as centred_mod
from ._maps import floor_mod as floor_mod
from ._maps import fourier_mod as fourier_mod
from ._maps import get_mod_map as get_mod_map
from ._maps import ste_mod as ste_mod
from ._maps import trunc_mod as trunc_mod
from ._mlp import VARIANTS as VARIANTS
from ._mlp import ModDense as ModDense
from ._mlp import ModMLP as ModMLP
from ._mlp import Modulus as Modulus
from ._report import write_report as write_report
from ._study import StudyEntry as StudyEntry
from ._study import default_entries as default_entries
from ._study import run_study as run_study
from ._train import RunConfig as RunConfig
from ._train import TrainSettings as TrainSettings
from ._train import train as train
