"""A configuration kept in a TOML file, and the presets a file or ``--config`` starts from."""

import dataclasses
import tomllib
from pathlib import Path

from ..errors import ConfigError
from ..files import write_atomic
from .design import PSEConfig


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} to TOML")


def save(config, path):
    """Write ``config`` to a TOML file (one key per field, under ``[pse]``)."""
    lines = ["# pse-hdl design point", "[pse]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in config.to_dict().items()]
    write_atomic(path, "\n".join(lines) + "\n")


def load(path):
    """Read a configuration from TOML. A ``preset = "name"`` key starts from that preset."""
    path = Path(path)
    name = str(path)
    if path.is_dir():
        raise ConfigError(f"configuration file {name!r} is a directory, not a TOML file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"configuration file {name!r} does not exist") from None
    except PermissionError:
        raise ConfigError(f"configuration file {name!r} cannot be read (permission denied)") \
            from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"configuration file {name!r} is not UTF-8 text (byte {e.start}): "
                          f"a TOML file is expected") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"configuration file {name!r} is not valid TOML: {e}") from None
    data = data.get("pse", data)
    if not isinstance(data, dict):
        raise ConfigError(f"pse in {name!r} must be a table of fields ([pse]), not "
                          f"{type(data).__name__} {data!r}")
    data = dict(data)
    base = preset(data.pop("preset", "default"))
    merged = base.to_dict()
    merged.update(data)
    return PSEConfig.from_dict(merged, source=str(path))


_DEFAULT = PSEConfig()
PRESETS = {
    # Four lanes and short zones: most blocks fit the iCE40 UP5K one at a time.
    "tiny": dataclasses.replace(_DEFAULT, zone_depth=256, meta_bits=0, master_depth=8192,
                                master_bank=0, max_rows=128, max_cols=128, hist_bins=64,
                                hist_sub_bits=1),
    "default": _DEFAULT,
    # The default with masked layers (docs/ALLOCATION.md, "Masked layers"): a layer may be stored
    # as uniform 4-bit weights with the input columns its thresholds prune left out, and a
    # finer importance histogram (16 bins an octave) lets the cut fall between columns of alike
    # size. examples/input_masks.toml is the same configuration, commented.
    "masks": dataclasses.replace(_DEFAULT, input_masks=True, hist_sub_bits=4, hist_bins=512),
    # The iCE40 UP5K (iCEBreaker), sized for a digits MLP 64-32-10: one lane, zones as deep as
    # its calibration candidates need (at most 237, 179 and 119 words), masters in an SPRAM.
    "up5k": dataclasses.replace(_DEFAULT, lanes=1, zone_depth=(256, 256, 128), master_depth=4096,
                                master_bank=0, max_rows=64, max_cols=64, max_layers=2,
                                hist_bins=64, hist_sub_bits=1),
    # An ECP5-85F class design point: 16 lanes and the optional 2-bit precision.
    "wide": dataclasses.replace(_DEFAULT, lanes=16, precisions=(2, 4, 8, 16),
                                thresholds=(1 << 10, 1 << 13, 1 << 16, 1 << 20),
                                zone_depth=8192, meta_bits=0, master_depth=65536),
}


def preset(name):
    """The named preset; a :class:`ConfigError` lists the valid names otherwise."""
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"preset must be one of {', '.join(PRESETS)}, not {name!r}") from None


def from_arg(arg):
    """Resolve a CLI ``--config`` argument: a preset name or a TOML file path."""
    if arg is None:
        return _DEFAULT
    if arg in PRESETS:
        return PRESETS[arg]
    if arg and (Path(arg).suffix == ".toml" or Path(arg).exists()):
        return load(arg)
    raise ConfigError(f"--config must be a preset ({', '.join(PRESETS)}) or a TOML file, "
                      f"not {arg!r}")
