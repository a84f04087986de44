"""The installed package's version, in a module of its own so that any room can read it.

(Reading it from the package ``__init__`` worked only because of statement order there.)
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("normresnet-export")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
