"""Tools: scoring, state calling, patient-level comparison, crosstalk, spatial barrier, profiles."""
