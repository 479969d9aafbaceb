"""The package logger; hcctme never configures the root logger.

No handler of its own (not even a ``NullHandler``): where the application configured no logging (a script, a
notebook), Python's last-resort handler prints the warnings to stderr, as the docs promise ("warned of"); an
application that configures Python's logging (the command line does) gets every message through its handlers.
"""

import logging

logger = logging.getLogger("hcctme")
#: the pipeline's one line per step (the command line shows it without --verbose)
STEP_LOGGER = "hcctme.pipeline"
