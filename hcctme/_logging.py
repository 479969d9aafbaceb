"""The package logger; hcctme never configures the root logger."""

import logging

logger = logging.getLogger("hcctme")
#: the pipeline's one line per step (the command line shows it without --verbose)
STEP_LOGGER = "hcctme.pipeline"
logger.addHandler(logging.NullHandler())
