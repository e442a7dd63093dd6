"""segkit: semantic segmentation of microscopy images, every part a plugin."""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

#: Marker for plugin hook implementations: ``@segkit.hookimpl def segkit_models(): ...``
hookimpl = pluggy.HookimplMarker("segkit")

__all__ = ["__version__", "hookimpl"]
