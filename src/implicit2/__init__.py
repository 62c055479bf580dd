"""implicit2: Deep Equilibrium implicit neural representations ((Implicit)², NeurIPS 2021)."""

__version__ = "0.1.0"
