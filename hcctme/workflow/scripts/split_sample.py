# Snakemake script: the work is done by hcctme.workflow._steps.split_sample (the public API behind it).
from hcctme.workflow import _steps

_steps.split_sample(snakemake)  # noqa: F821 - injected by Snakemake
