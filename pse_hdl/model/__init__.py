"""Bit-exact NumPy golden model of the Precision & Sparsity Engine (see docs/SPEC.md)."""
