"""The one configuration of the Precision & Sparsity Engine.

Every width, depth and rate of the engine is decided here and nowhere else: the RTL, the golden
model, the CLI and the docs read a :class:`PSEConfig`. It is frozen and validated on construction,
so an invalid design point raises :class:`ConfigError` (naming the field, the bad value and what
is allowed) before any hardware is built. Derived values are properties, computed in one place.
Presets are made from the default with :func:`dataclasses.replace`; a configuration round-trips
through a TOML file so a user can keep a design point.
"""

from ..errors import ConfigError
from .checks import ALLOWED_PRECISIONS, IMPORTANCE_FORMS, LARGEST_DEVICE, META_ENCODINGS
from .design import FIRMWARE_FIELDS, LINK_FIELDS, PSEConfig
from .files import PRESETS, from_arg, load, preset, save

__all__ = ["ConfigError", "PSEConfig", "PRESETS", "preset", "load", "save", "from_arg",
           "ALLOWED_PRECISIONS", "FIRMWARE_FIELDS", "LINK_FIELDS", "IMPORTANCE_FORMS",
           "META_ENCODINGS", "LARGEST_DEVICE"]
