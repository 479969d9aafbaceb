# Snakemake script: the work is done by hcctme.workflow._steps.profile (the public API behind it).
from hcctme.workflow import _steps

_steps.profile(snakemake)  # noqa: F821 - injected by Snakemake
