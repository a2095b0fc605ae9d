"""One module per assignment (a0_ops.py, a1_features.py, ...), each defining ``ASSIGNMENT``."""
