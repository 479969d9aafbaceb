"""Plots for each tool's results (matplotlib, scanpy look)."""

from hcctme.pl._states import states  # noqa: E402,F401
from hcctme.pl._tib import tib  # noqa: E402,F401
from hcctme.pl._compare import compare, volcano  # noqa: E402,F401
from hcctme.pl._profile import resistance_profile  # noqa: E402,F401
from hcctme.pl._scores import scores  # noqa: E402,F401
from hcctme.pl._crosstalk import crosstalk  # noqa: E402,F401
