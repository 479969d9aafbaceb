# Snakemake script: the work is done by hcctme.workflow._steps.merge_scores (the public API behind it).
from hcctme.workflow import _steps

_steps.merge_scores(snakemake)  # noqa: F821 - injected by Snakemake
