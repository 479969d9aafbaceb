# Snakemake script: the work is done by hcctme.workflow._steps.ta_response (the public API behind it).
from hcctme.workflow import _steps

_steps.ta_response(snakemake)  # noqa: F821 - injected by Snakemake
