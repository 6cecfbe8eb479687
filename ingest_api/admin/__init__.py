"""The authenticated admin API."""
