"""A/B experiments: definitions and exposure recording."""
