"""What the ``pse`` commands share: the configuration of ``--config``, and output paths checked
before long work."""

from pathlib import Path

from ..config import ConfigError, from_arg

__all__ = ["config_of", "check_output_dir", "check_output_file"]


def config_of(args):
    return from_arg(getattr(args, "config", None))


def check_output_dir(path):
    """A build directory: an existing one, or one made now (with its parents)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"--output: {path!r} exists and is not a directory")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--output: {path!r} cannot be made: {e.strerror}") from None


def check_output_file(path, suffix):
    """A file to write later: the right ending, in a directory that exists (checked before
    long work)."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{path!r} is a directory: give a file name ending in {suffix}")
    if p.suffix.lower() != suffix:
        raise ConfigError(f"{path!r} must end in {suffix}")
    if not p.resolve().parent.is_dir():
        raise ConfigError(f"the directory of {path!r} does not exist")
