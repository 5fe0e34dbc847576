"""pse-hdl: RTL generator for a Precision & Sparsity Engine.

``pse_hdl.convert(model, config=..., calibration=(x, y))`` gives a :class:`~pse_hdl.api.Design`
of a scikit-learn, ONNX or ``.npz`` network for the engine; ``pse_hdl.load(path)`` reads a saved
one (``docs/API.md``).
"""

__version__ = "0.1.0"


def convert(*args, **kwargs):
    from .api import convert as _convert
    return _convert(*args, **kwargs)


convert.__doc__ = "A Design for a network: see pse_hdl.api.convert."


def load(path):
    """A Design saved with Design.save (pse_hdl.api.load)."""
    from .api import load as _load
    return _load(path)
