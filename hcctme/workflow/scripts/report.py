# Snakemake script: the work is done by hcctme.workflow._steps.report (the public API behind it).
from hcctme.workflow import _steps

_steps.report(snakemake)  # noqa: F821 - injected by Snakemake
