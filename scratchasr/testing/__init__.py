"""Tools for checking hand-written gradients; public, course assignments import them."""

from .gradcheck import GradcheckReport, InputCheck, gradcheck

__all__ = ["gradcheck", "GradcheckReport", "InputCheck"]
