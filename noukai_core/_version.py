"""The distribution's version, read by the build backend and by `noukai_core.__version__`."""

__version__ = "0.1.0"
