"""Tools for checking hand-written gradients and the readable references (``reference``: naive loops,
brute-force sums); public, course assignments and their graders import them."""

from .gradcheck import GradcheckReport, InputCheck, gradcheck
from . import reference
from .model_check import model_gradcheck, restore_caches, take_caches

__all__ = ["gradcheck", "GradcheckReport", "InputCheck", "model_gradcheck", "take_caches", "restore_caches",
           "reference"]
