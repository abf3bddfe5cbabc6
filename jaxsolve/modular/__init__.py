"""The ``w mod m`` study: modular weight maps, an MLP that uses them, and why it stops learning.

See ``docs/modular.md`` for the question, the measurements and the fixes.
"""

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
