"""Sphinx configuration: the API reference from the docstrings (autodoc + napoleon,
numpy style) and the Markdown guides in docs/ (MyST).

Build (from the repository root; flatext must be importable, compiled module
included: ``pip install ".[docs]"``, or a worktree whose extension is built):

    python3 -m sphinx -W --keep-going -b html docs build/docs/html
"""

import importlib.util
import os
import sys

# A source checkout with the built extension in python/flatext/ (tools/ and CI use
# the installed package instead: this only matters when flatext is not installed).
_here = os.path.dirname(os.path.abspath(__file__))
if importlib.util.find_spec("flatext") is None:
    sys.path.insert(0, os.path.join(_here, "..", "python"))

import flatext  # noqa: E402  (the compiled module must load: autodoc imports flatext)

project = "flatext"
author = "the flatext authors"
copyright = "the flatext authors"
release = flatext.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# numpy-style docstrings
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True  # Attributes as fields: no duplicates of a NamedTuple's own field members
autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the docstrings say the types
# the adapters' frameworks are optional: document them even where they are not installed
autodoc_mock_imports = [m for m in ("torch", "jax") if importlib.util.find_spec(m) is None]

# MyST: the guides link to each other as files (design.md#section) and to files outside docs/
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath"]

html_theme = "alabaster"
html_title = f"flatext {release}"
