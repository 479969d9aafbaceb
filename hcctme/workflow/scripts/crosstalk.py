# Snakemake script: the work is done by hcctme.workflow._steps.crosstalk (the public API behind it).
from hcctme.workflow import _steps

_steps.crosstalk(snakemake)  # noqa: F821 - injected by Snakemake
