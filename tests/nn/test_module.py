import numpy as np
import pytest

from scratchasr.nn.module import Module, ModuleList


class Scale(Module):
    """y = x * w (elementwise), the smallest module with a parameter and a cache."""

    def __init__(self, n):
        super().__init__()
        self.add_param("w", np.linspace(1.0, 2.0, n))
        self.add_buffer("calls", np.zeros(1))

    def forward(self, x):
        self.push(x)
        self.buffers["calls"] += 1
        return x * self.params["w"]

    def backward(self, dout):
        x = self.pop()
        self.grads["w"] += (dout * x).sum(0)
        return dout * self.params["w"]


class Net(Module):
    def __init__(self):
        super().__init__()
        self.first = Scale(3)
        self.layers = ModuleList([Scale(3), Scale(3)])

    def forward(self, x):
        x = self.first(x)
        for m in self.layers:
            x = m(x)
        return x

    def backward(self, dout):
        for m in reversed(list(self.layers)):
            dout = m.backward(dout)
        return self.first.backward(dout)


def test_dotted_names_and_grads():
    net = Net()
    assert sorted(net.parameters()) == ["first.w", "layers.0.w", "layers.1.w"]
    x = np.ones((2, 3))
    y = net(x)
    dx = net.backward(np.ones_like(y))
    w = np.linspace(1, 2, 3)
    np.testing.assert_allclose(dx, np.tile(w ** 3, (2, 1)))
    np.testing.assert_allclose(net.gradients()["first.w"], 2 * w ** 2)
    assert net.num_parameters() == 9


def test_zero_grad_fails_on_leftover_cache():
    net = Net()
    net(np.ones((1, 3)))
    with pytest.raises(RuntimeError, match="first.*still holds 1 cache"):
        net.zero_grad()


def test_eval_pushes_nothing_and_backward_without_forward_fails():
    net = Net().eval()
    net(np.ones((1, 3)))
    net.zero_grad()  # nothing left behind
    with pytest.raises(RuntimeError, match="no cache left"):
        net.first.backward(np.ones((1, 3)))
    assert not net.train().eval().layers[0].training


def test_state_dict_round_trip_and_errors():
    a, b = Net(), Net()
    a.first.params["w"][...] = 7.0
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(b.first.params["w"], 7.0)
    assert "layers.1.calls" in a.state_dict()
    state = a.state_dict()
    del state["layers.0.w"]
    state["bogus"] = np.zeros(1)
    with pytest.raises(ValueError, match=r"missing keys \['layers.0.w'\], unexpected keys \['bogus'\]"):
        b.load_state_dict(state)
    state = a.state_dict()
    state["first.w"] = np.zeros(4)
    with pytest.raises(ValueError, match=r"state\['first.w'\]: expected shape \(3,\)"):
        b.load_state_dict(state)
    state["first.w"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="dtype"):
        b.load_state_dict(state)


def test_add_param_validation():
    m = Module()
    with pytest.raises(ValueError, match=r"^name:"):
        m.add_param("a.b", np.zeros(1))
    with pytest.raises(TypeError, match=r"^W:"):
        m.add_param("W", np.zeros(1, np.int64))
