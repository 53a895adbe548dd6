"""torchvision's model definitions as test oracles, when torch and torchvision are installed.

The torchvision wheel that pip pairs with torch 2.13 fails on `import torchvision` (its compiled
operator torchvision::nms does not register), but the model files are pure Python: a stub
package whose __path__ is the installed folder lets `torchvision.models.<module>` import
without running torchvision/__init__.py. Tests call `model(module, builder, **kwargs)`; it
skips the test when torch or torchvision is missing.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types

import pytest


def _stub_torchvision() -> None:
    if "torchvision" in sys.modules:
        return
    found = importlib.util.find_spec("torchvision")
    if found is None or found.origin is None:
        pytest.skip("torchvision is not installed (pip install --no-deps torchvision==0.28.0)")
    stub = types.ModuleType("torchvision")
    stub.__path__ = [os.path.dirname(found.origin)]
    sys.modules["torchvision"] = stub


def model(module: str, builder: str, **kwargs):
    """torchvision.models.<module>.<builder>(weights=None, **kwargs), in eval mode."""
    pytest.importorskip("torch")
    _stub_torchvision()
    mod = importlib.import_module(f"torchvision.models.{module}")
    net = getattr(mod, builder)(weights=None, **kwargs)
    return net.eval()
