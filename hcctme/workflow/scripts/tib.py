# Snakemake script: the work is done by hcctme.workflow._steps.tib (the public API behind it).
from hcctme.workflow import _steps

_steps.tib(snakemake)  # noqa: F821 - injected by Snakemake
