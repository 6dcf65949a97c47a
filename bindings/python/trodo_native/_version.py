"""The package version: the same as libtrodo's (a test checks)."""

__version__ = "0.1.0"
