"""Payload layouts of the engine's streams, built from the configuration.

The tagged weight transfer is built from :func:`pse_hdl.model.transfer.fields`, the same list the
golden model packs, so the protocol is defined once.
"""

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from ..model import transfer

__all__ = ["log2", "position", "importance_in", "code_out", "transfer_layout", "activation", "product",
           "master_in", "clear", "mac_result", "schedule", "observation", "act_write"]


def log2(x):
    """Bits to index ``x`` things (ceil(log2(x)); 0 for one)."""
    return (x - 1).bit_length()


def position(cfg):
    """Where a weight sits: row, column and whether it ends its row."""
    return {"row": unsigned(cfg.row_bits), "column": unsigned(cfg.col_bits), "last": 1}


def importance_in(cfg):
    """Into the PA: an importance, the weight's previous code (for hysteresis), its position."""
    return data.StructLayout({"importance": unsigned(cfg.importance_bits),
                              "prev": unsigned(cfg.code_bits), **position(cfg)})


def code_out(cfg):
    """Out of the PA (and SM): the new code, the importance it came from, the position."""
    return data.StructLayout({"code": unsigned(cfg.code_bits),
                              "importance": unsigned(cfg.importance_bits), **position(cfg)})


def transfer_layout(cfg):
    return data.StructLayout({name: (signed(w) if s else unsigned(w))
                              for name, w, s in transfer.fields(cfg)})


def activation(cfg):
    """One activation of a sample, in column order; ``last`` ends the sample."""
    return data.StructLayout({"value": signed(cfg.act_bits), "last": 1})


def product(cfg):
    """Literal RIC update: the weight and activation the MAC multiplies, and where."""
    return data.StructLayout({"value": signed(cfg.act_bits), "master": signed(cfg.weight_bits),
                              **position(cfg)})


def master_in(cfg):
    """An allocation pass: master weights in row-major order with their previous codes."""
    return data.StructLayout({"master": signed(cfg.weight_bits), "prev": unsigned(cfg.code_bits),
                              **position(cfg)})


def clear(cfg):
    """Destructive SM: the master weight to zero."""
    return data.StructLayout({"row": unsigned(cfg.row_bits), "column": unsigned(cfg.col_bits)})


def mac_result(cfg):
    """A finished row out of the MAC array: requantized value, accumulator, overflow flag."""
    return data.StructLayout({"row": unsigned(cfg.row_bits), "value": signed(cfg.act_bits),
                              "acc": signed(cfg.acc_bits), "overflow": 1})


def schedule(cfg):
    """Per fetch port (MAC lane) and layer: the row its first transfer is in, and whether that
    row began on the previous port (``model.transfer.port_schedule``)."""
    return data.StructLayout({"row": unsigned(cfg.row_bits), "cont": 1})


def observation(cfg):
    """One activation the factored RIC observes: its value, the input (column) of layer
    ``layer`` it enters, and ``last`` on a sample's final one (counted in ``samples``)."""
    return data.StructLayout({"value": signed(cfg.act_bits), "column": unsigned(cfg.col_bits),
                              "last": 1})


def act_write(cfg):
    """One activation into the MAC array's operand buffers: value, column, and which half of
    the ping-pong buffer (layer parity) it goes to."""
    return data.StructLayout({"value": signed(cfg.act_bits), "column": unsigned(cfg.col_bits),
                              "half": 1})
