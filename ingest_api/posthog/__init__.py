"""PostHog-compatible capture and flag endpoints, translated onto the native pipeline."""
