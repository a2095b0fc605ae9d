import numpy as np
import pytest

from scratchasr import _validate as v


def test_float_array_accepts_and_rejects():
    x = np.zeros((2, 3), np.float32)
    assert v.float_array("x", x, ndim=2, shape=(2, None)) is x
    with pytest.raises(TypeError, match="^x: expected dtype"):
        v.float_array("x", np.zeros(3, np.int32))
    with pytest.raises(TypeError, match="^logits: expected a numpy.ndarray"):
        v.float_array("logits", [1.0, 2.0])
    with pytest.raises(ValueError, match=r"^h0: expected a 2-D array"):
        v.float_array("h0", np.zeros(3), ndim=2)
    with pytest.raises(ValueError, match=r"^W: expected shape \(4, \*\)"):
        v.float_array("W", np.zeros((3, 2)), shape=(4, None))
    with pytest.raises(ValueError, match=r"^y: expected finite values, found nan at index \(1,\)"):
        v.float_array("y", np.array([0.0, np.nan]), finite=True)


def test_lengths():
    np.testing.assert_array_equal(v.lengths_array("lengths", None, 2, 5), [5, 5])
    np.testing.assert_array_equal(v.lengths_array("lengths", [3, 5], 2, 5), [3, 5])
    with pytest.raises(ValueError, match=r"^lengths: expected values in \[0, 5\]"):
        v.lengths_array("lengths", np.array([6, 1]), 2, 5)
    with pytest.raises(ValueError, match=r"^lengths: expected shape \(2\)"):
        v.lengths_array("lengths", np.array([1, 1, 1]), 2, 5)
    with pytest.raises(TypeError, match="^lengths: expected an integer dtype"):
        v.lengths_array("lengths", np.array([1.0, 2.0]), 2, 5)
    with pytest.raises(ValueError, match=r"^logit_lengths: expected values in \[1, 5\]"):
        v.lengths_array("logit_lengths", np.array([0, 2]), 2, 5, allow_zero=False)
    np.testing.assert_array_equal(v.length_mask(np.array([1, 3]), 3), [[1, 0, 0], [1, 1, 1]])


def test_scalars_and_dtypes():
    assert v.positive_int("chunk_size", 3) == 3
    with pytest.raises(ValueError, match="^chunk_size: expected an integer >= 1, got 0"):
        v.positive_int("chunk_size", 0)
    with pytest.raises(TypeError, match=r"^chunk_size:"):
        v.positive_int("chunk_size", 2.0)
    with pytest.raises(ValueError, match="^reduction: expected one of"):
        v.choice("reduction", "avg", ("none", "sum", "mean"))
    assert v.same_dtype(a=np.zeros(1), b=np.zeros(2)) == np.float64
    with pytest.raises(TypeError, match="a=float32, b=float64"):
        v.same_dtype(a=np.zeros(1, np.float32), b=np.zeros(2))


def test_kernels_installed_as_subpackage():
    import scratchasr.kernels
    from scratchasr.kernels._njit import FASTMATH, njit
    assert scratchasr.kernels.__name__ == "scratchasr.kernels"
    assert not {"nnan", "ninf", "fast"} & set(FASTMATH)

    @njit
    def log_add(a, b):
        return max(a, b) + np.log1p(np.exp(-abs(a - b))) if a != b else a + np.log(2.0)

    assert log_add(-np.inf, 0.0) == 0.0  # -inf (log 0) survives the fastmath flags
