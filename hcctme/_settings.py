"""Global settings (``hcctme.settings``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

#: the environment variable that turns progress bars off in a new process (a workflow job)
PROGRESS_VARIABLE = "HCCTME_PROGRESS"


@dataclass
class Settings:
    """Run-time settings.

    Attributes
    ----------
    progress
        Show tqdm progress bars on long computations (off where the environment sets ``HCCTME_PROGRESS=0``: how
        ``hcctme --no-progress workflow`` reaches its Snakemake jobs, each a process of its own).
    n_jobs
        Default number of threads for compiled kernels when a tool's ``n_jobs`` is None.
    """

    progress: bool = field(default_factory=lambda: os.environ.get(PROGRESS_VARIABLE, "1") != "0")
    n_jobs: int = 1


settings = Settings()
