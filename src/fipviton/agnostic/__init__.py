"""Agnostic construction: per garment category, the region to repaint and the person without it."""

from fipviton.agnostic.build import AGNOSTIC_GREY, Agnostic, AgnosticConfig, build_agnostic

__all__ = ["AGNOSTIC_GREY", "Agnostic", "AgnosticConfig", "build_agnostic"]
