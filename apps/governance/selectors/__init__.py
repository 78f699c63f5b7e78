"""Reads that carry governance rules."""
