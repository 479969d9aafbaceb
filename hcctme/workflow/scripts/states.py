# Snakemake script: the work is done by hcctme.workflow._steps.states (the public API behind it).
from hcctme.workflow import _steps

_steps.states(snakemake)  # noqa: F821 - injected by Snakemake
