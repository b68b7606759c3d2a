"""fipviton: fast, identity-consistent virtual try-on."""

__version__ = "0.1.0"
