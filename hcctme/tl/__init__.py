"""Tools: scoring, state calling, patient-level comparison, crosstalk, spatial barrier, profiles."""

from hcctme.tl._call_states import call_states  # noqa: E402,F401
from hcctme.tl._tib import tib  # noqa: E402,F401
from hcctme.tl._pseudobulk import pseudobulk  # noqa: E402,F401
from hcctme.tl._compare import compare  # noqa: E402,F401
from hcctme.tl._score import score  # noqa: E402,F401
from hcctme.tl._enrich import enrich  # noqa: E402,F401
from hcctme.tl._ta_response import TAResponse, ta_response  # noqa: E402,F401
from hcctme.tl._profile import resistance_profile  # noqa: E402,F401
from hcctme.tl._crosstalk import crosstalk  # noqa: E402,F401
