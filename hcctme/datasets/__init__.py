"""Simulated HCC cohorts with ground truth, and the demo cohort."""
