"""Tools for checking hand-written gradients; public, course assignments import them."""

from .gradcheck import GradcheckReport, InputCheck, gradcheck
from .model_check import model_gradcheck, restore_caches, take_caches

__all__ = ["gradcheck", "GradcheckReport", "InputCheck", "model_gradcheck", "take_caches", "restore_caches"]
