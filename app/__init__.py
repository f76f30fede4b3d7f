"""GAD Studio: the web studio, its data and its jobs, around the `gad` library."""

from gad import __version__  # noqa: F401 (one version for library and studio: defined in gad/__init__.py)
