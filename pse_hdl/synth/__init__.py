"""Synthesis and lint flows: yosys and nextpnr (YoWASP, from PyPI) for iCE40 and ECP5."""
