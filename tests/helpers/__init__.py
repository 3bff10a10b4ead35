"""Helpers shared by test modules (test modules import from here or from a conftest, never
from another test module)."""
