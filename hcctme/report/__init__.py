"""Self-contained HTML report of a full hcctme run."""
