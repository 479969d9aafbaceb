# Snakemake script: the work is done by hcctme.workflow._steps.score_sample (the public API behind it).
from hcctme.workflow import _steps

_steps.score_sample(snakemake)  # noqa: F821 - injected by Snakemake
