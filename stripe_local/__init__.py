"""A Stripe-compatible local server for development and tests (see README.md)."""

API_VERSION = "2026-08-26.dahlia"

__all__ = ["API_VERSION"]
