# Snakemake script: the work is done by hcctme.workflow._steps.compare (the public API behind it).
from hcctme.workflow import _steps

_steps.compare(snakemake)  # noqa: F821 - injected by Snakemake
