"""DnCNN: exact parameter counts (reference 000 §2.2), shapes, skip schemes, bad input."""
import pytest
import torch

from data_tools.errors import PipelineInputError
from models.registry import build_model, count_parameters
from models.dncnn import DnCNN


@pytest.mark.parametrize("kwargs, expected", [
    (dict(in_ch=1, out_ch=1, depth=18, width=64, kernel=3, head_kernel=1), 666_561),
    (dict(in_ch=1, out_ch=1, depth=18, width=64, kernel=3, head_kernel=3), 667_073),
    (dict(in_ch=16, out_ch=16, head_kernel=1), 676_176),
])
def test_parameter_counts(kwargs, expected):
    assert count_parameters(DnCNN(**kwargs)) == expected


@pytest.mark.parametrize("skip", ["dncnn", "resnet", "none"])
def test_output_shape_equals_input(skip):
    net = build_model("dncnn", depth=4, width=8, skip=skip).eval()
    x = torch.rand(2, 1, 20, 24)
    assert net(x).shape == x.shape


def test_dncnn_skip_is_an_explicit_image_skip():
    net = DnCNN(1, 1, depth=3, width=8, skip="dncnn").eval()
    torch.nn.init.zeros_(net.head.weight)
    torch.nn.init.zeros_(net.head.bias)
    x = torch.rand(1, 1, 16, 16)
    assert torch.equal(net(x), x)  # f(x) = 0 -> y_hat = x
    plain = DnCNN(1, 1, depth=3, width=8, skip="none").eval()
    torch.nn.init.zeros_(plain.head.weight)
    torch.nn.init.zeros_(plain.head.bias)
    assert torch.count_nonzero(plain(x)) == 0


def test_resnet_scheme_differs_from_plain_with_same_weights():
    torch.manual_seed(0)
    a = DnCNN(1, 1, depth=4, width=8, skip="resnet").eval()
    b = DnCNN(1, 1, depth=4, width=8, skip="dncnn").eval()
    b.load_state_dict(a.state_dict())
    x = torch.rand(1, 1, 16, 16)
    assert not torch.allclose(a(x), b(x))
    assert count_parameters(a) == count_parameters(b)  # identity skips add no parameters


def test_body_layers_have_no_bias_and_batchnorm():
    net = DnCNN()
    assert len(net.body) == 18
    for block in net.body:
        assert block[0].bias is None and isinstance(block[1], torch.nn.BatchNorm2d)
    assert net.head.kernel_size == (1, 1)


def test_bad_arguments_raise():
    with pytest.raises(PipelineInputError, match="skip"):
        DnCNN(16, 1, skip="dncnn")
    with pytest.raises(PipelineInputError, match="skip"):
        DnCNN(skip="densenet")
    with pytest.raises(PipelineInputError, match="kernel"):
        DnCNN(kernel=2)
    with pytest.raises(PipelineInputError, match="unknown model"):
        build_model("resnet50")
    with pytest.raises(PipelineInputError, match="dncnn"):
        build_model("dncnn", widht=3)
