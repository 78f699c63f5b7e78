"""Generators and benchmark scripts (each prints JSON)."""
