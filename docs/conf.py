"""Sphinx configuration of the hcctme API reference (built offline by ``make docs``; warnings are errors)."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import _generate  # noqa: E402

import hcctme  # noqa: E402

project = "hcctme"
author = "hcctme developers"
copyright = "hcctme developers"
release = hcctme.__version__
version = release

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]

autosummary_generate = True
autodoc_typehints = "signature"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": False}
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # the tutorials are rendered, never run: the site builds offline in seconds
nb_merge_streams = True

# docstrings may write an absolute value as |x| (tl.crosstalk: "larger |effect|"): show it as text, not as an
# undefined reST substitution
rst_prolog = ".. |effect| replace:: \\|effect\\|\n"

html_theme = "alabaster"
html_title = f"hcctme {release}"
html_static_path = []

# the pages made from the library itself: signature families, knowledge base, tutorials
_generate.write_all(HERE / "generated")
