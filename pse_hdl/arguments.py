"""The arguments of the Python API checked before any work (:mod:`pse_hdl.api`): a mistake is
one :class:`~pse_hdl.errors.ConfigError` or :class:`~pse_hdl.errors.InputError` line that names
the argument and what is allowed."""

from pathlib import Path

import numpy as np

from .config import PSEConfig, from_arg
from .errors import ConfigError, InputError
from .importers import class_indices

__all__ = ["config_of", "calibration_of", "same_length", "check_bits", "check_mac",
           "check_loss", "check_adapt"]


def config_of(config):
    if config is None:
        return PSEConfig()
    if isinstance(config, PSEConfig):
        return config
    if isinstance(config, (str, Path)):
        return from_arg(str(config))
    raise ConfigError(f"config must be a PSEConfig, a preset name or a TOML file, not "
                      f"{type(config).__name__}")


def calibration_of(source, calibration, task):
    if calibration is None:
        raise InputError("convert() needs calibration=(x, y): samples the network is quantized, "
                         "profiled and calibrated on (never the test samples)")
    try:
        x, y = calibration
    except (TypeError, ValueError):
        raise InputError("calibration must be a pair (x, y) of arrays") from None
    x = np.asarray(x)
    if x.dtype.kind not in "biuf" or x.ndim != 2 or not len(x):
        raise InputError(f"calibration x must be a non-empty 2-D numeric array (samples x "
                         f"features), not shape {x.shape} of {x.dtype}")
    if not np.all(np.isfinite(x)):
        raise InputError("calibration x has NaN or infinite values")
    if x.shape[1] != source.inputs:
        raise InputError(f"calibration x has {x.shape[1]} features but the model takes "
                         f"{source.inputs} inputs")
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(x):
        raise InputError(f"calibration y must be 1-D with one value per sample ({len(x)}), not "
                         f"shape {y.shape}")
    if task == "classification":
        y = class_indices(source, y, "calibration labels")
    else:
        if y.dtype.kind not in "biuf":
            raise InputError(f"calibration targets must be numbers for a regressor, not "
                             f"{'text like ' + repr(str(y.ravel()[0])) if y.size else y.dtype}")
        if not np.all(np.isfinite(y)):
            raise InputError("calibration targets must be finite numbers")
        if source.outputs != 1:
            raise InputError(f"regression targets have one column but the model has "
                             f"{source.outputs} outputs (for a classifier, give class "
                             f"numbers 0..{source.outputs - 1} as labels)")
    return x.astype(np.float64), y


def same_length(x, y):
    """Samples and labels (or targets) pair up."""
    n, m = len(np.asarray(x)), len(np.asarray(y))
    if n != m:
        raise InputError(f"{n} samples but {m} labels or targets: one each")


def check_bits(name, bits):
    """A bit budget (``name`` in the message): a positive finite number."""
    if isinstance(bits, bool) or not isinstance(bits, (int, float)) or not np.isfinite(bits) \
            or bits <= 0:
        raise ConfigError(f"{name} must be a positive number of bits per weight, not {bits!r}")


def check_mac(max_mac):
    """A cycle budget: None, or a fraction of dense 16-bit's MAC cycles in (0, 1]."""
    if max_mac is not None and (isinstance(max_mac, bool) or not isinstance(max_mac, (int, float))
                                or not 0 < max_mac <= 1):
        raise ConfigError(f"max_mac must be a fraction of the dense 16-bit MAC cycles in "
                          f"(0, 1], not {max_mac!r}")
    return None if max_mac is None else float(max_mac)


def check_loss(max_loss, adapt=None):
    """An accuracy target: None, or a fraction of the score in [0, 1), not with ``adapt``."""
    if max_loss is None:
        return None
    if isinstance(max_loss, bool) or not isinstance(max_loss, (int, float)) \
            or not 0 <= max_loss < 1:
        raise ConfigError(f"max_loss must be a fraction of the score in [0, 1) (0.01: one point "
                          f"of accuracy), not {max_loss!r}")
    if adapt is not None:
        raise ConfigError("max_loss and adapt cannot be combined: max_loss chooses one layout "
                          "by its score, adapt a ladder of budgets")
    return float(max_loss)


def check_adapt(adapt, target_bits, design):
    """``(floor, ceiling)`` of a budget that follows performance, checked."""
    if not isinstance(adapt, (tuple, list)) or len(adapt) != 2:
        raise ConfigError(f"adapt must be (floor, ceiling) in bits per weight, not {adapt!r}")
    floor, ceiling = adapt
    check_bits("the adapt floor", floor)
    check_bits("the adapt ceiling", ceiling)
    if not floor <= target_bits <= ceiling:
        raise ConfigError(f"adapt must have floor <= target_bits <= ceiling, not {floor!r} <= "
                          f"{target_bits!r} <= {ceiling!r}")
    if design.task != "classification" or design.source.outputs < 2:
        raise ConfigError("adapt needs a classifier with two or more outputs (the budget "
                          "follows the margin between its two largest logits)")
    return float(floor), float(ceiling)
