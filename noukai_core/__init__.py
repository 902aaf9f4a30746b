"""noukai_core: the Noukai client (sync `Noukai`, async `AsyncNoukai`).

This module is the public surface and nothing else: every public name is
re-exported here and listed in `__all__`; implementation modules are private
(underscored).
"""

from noukai_core._version import __version__

__all__ = ["__version__"]
