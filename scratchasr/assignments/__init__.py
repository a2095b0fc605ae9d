"""Course assignments built from the solution code: markers, builder, grader (docs/assignments.md).

``build(aid, out)`` writes the student handout and the autograder; ``grade(aid, submission)`` scores a
submission item by item; ``check(aid)`` runs the public checks in a student copy. Specs live in
``specs/<slug>.py``, one per assignment.
"""

from .builder import BuildError, build
from .grader import GradeResult, check, format_table, grade, results_json
from .spec import Assignment, Item, Term, available, get

__all__ = ["build", "grade", "check", "format_table", "results_json", "available", "get", "Assignment",
           "Item", "Term", "GradeResult", "BuildError"]
