"""Preprocessing: gene-symbol harmonisation and input checks."""
