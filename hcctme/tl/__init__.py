"""Tools: scoring, state calling, patient-level comparison, crosstalk, spatial barrier, profiles."""

from hcctme._validate import TooFewCellsError, TooFewGenesError
from hcctme.tl._call_states import call_states
from hcctme.tl._compare import compare
from hcctme.tl._crosstalk import crosstalk
from hcctme.tl._enrich import enrich
from hcctme.tl._profile import resistance_profile
from hcctme.tl._pseudobulk import pseudobulk
from hcctme.tl._score import ScoringWarning, score
from hcctme.tl._ta_response import ta_response
from hcctme.tl._tib import tib

__all__ = ["ScoringWarning", "TooFewCellsError", "TooFewGenesError", "call_states", "compare", "crosstalk", "enrich",
           "pseudobulk", "resistance_profile", "score", "ta_response", "tib"]
