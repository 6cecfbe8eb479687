"""Analytics definitions both the HTTP service and the pipeline compute with (pure: parse, SQL text, shaping)."""
