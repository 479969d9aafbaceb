"""The shipped Snakemake workflow (``Snakefile``, ``rules/*.smk``) and a runner for ``hcctme workflow``.

Use it from your own workflow with a ``module`` directive::

    from hcctme.workflow import snakefile
    module hcctme:
        snakefile: snakefile()
        config: config["hcctme"]
    use rule * from hcctme as hcctme_*
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from hcctme._settings import PROGRESS_VARIABLE, settings


def snakefile() -> str:
    """Path of the shipped Snakefile."""
    return str(resources.files("hcctme.workflow").joinpath("Snakefile"))


def config_schema() -> str:
    """Path of the JSON schema (YAML) the workflow validates its config against."""
    return str(resources.files("hcctme.workflow").joinpath("schemas", "config.schema.yaml"))


def run_workflow(configfile: str | Path, *, cores: int | None = None, directory: str | Path | None = None,
                 extra_args: Sequence[str] = ()) -> int:
    """Run the workflow with snakemake in a subprocess; returns snakemake's exit status.

    ``cores=None`` runs on one local core, or leaves the number of jobs to snakemake's own ``--jobs``
    when ``extra_args`` choose an executor plugin (``--executor slurm``): ``--cores 1`` there would
    run one cluster job at a time.
    """
    configfile = Path(configfile)
    if not configfile.is_file():
        raise FileNotFoundError(f"config file {str(configfile)!r} does not exist")
    try:
        import snakemake
    except ImportError:
        raise ImportError("the workflow needs snakemake: pip install 'hcctme[workflow]'") from None
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", snakefile(), "--configfile", str(configfile.resolve())]
    executor = any(arg == "--executor" or arg.startswith("--executor=") for arg in extra_args)
    if cores is not None or not executor:
        cmd += ["--cores", str(1 if cores is None else cores)]
    if directory is not None:
        cmd += ["--directory", str(directory)]
    cmd += list(extra_args)
    env = None if settings.progress else {**os.environ, PROGRESS_VARIABLE: "0"}  # the jobs are processes of their own
    return subprocess.call(cmd, env=env)
