"""The package logger; hcctme never configures the root logger."""

import logging

logger = logging.getLogger("hcctme")
logger.addHandler(logging.NullHandler())
