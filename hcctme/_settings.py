"""Global settings (``hcctme.settings``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Settings:
    """Run-time settings.

    Attributes
    ----------
    progress
        Show tqdm progress bars on long computations.
    n_jobs
        Default number of threads for compiled kernels when a tool's ``n_jobs`` is None.
    """

    progress: bool = True
    n_jobs: int = 1


settings = Settings()
