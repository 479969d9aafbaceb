"""Plots for each tool's results (matplotlib, scanpy look)."""
