"""pse-hdl: RTL generator for a Precision & Sparsity Engine."""

__version__ = "0.1.0"
