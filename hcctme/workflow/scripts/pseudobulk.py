# Snakemake script: the work is done by hcctme.workflow._steps.pseudobulk (the public API behind it).
from hcctme.workflow import _steps

_steps.pseudobulk(snakemake)  # noqa: F821 - injected by Snakemake
