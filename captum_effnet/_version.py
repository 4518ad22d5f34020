"""The installed version (from the distribution metadata when installed)."""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("captum-effnet")
except metadata.PackageNotFoundError:  # running from an uninstalled source tree
    __version__ = "0.1.0.dev0"
