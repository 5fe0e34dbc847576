"""The exceptions a user's mistake raises: one clear line, naming what is wrong and what is
allowed. The command line prints them without a traceback and exits with code 2; anything else
that escapes is a bug."""

__all__ = ["UserError", "InputError", "ConfigError", "CapacityError", "BudgetError"]


class UserError(ValueError):
    """A mistake in what the user gave (a file, data, a model, a configuration)."""


class InputError(UserError):
    """A model or data file, or an array, that cannot be used; the message names it."""


class ConfigError(UserError):
    """An invalid configuration value, or a network the configuration cannot hold; the message
    names the field and what is allowed."""


class CapacityError(ConfigError):
    """A layout that does not fit a memory of the configuration (a zone, the metadata)."""


class BudgetError(ConfigError):
    """A bit budget no candidate layout reaches: ``target_bits``, and ``least``, the bits per
    weight of the smallest candidate (what the budget must be at least)."""

    def __init__(self, message, target_bits, least):
        super().__init__(message)
        self.target_bits, self.least = target_bits, least
