"""Modified U-Net ('Autoencoder'): exact parameter counts (reference 000 §2.4-2.5), bottleneck, shapes."""
import pytest
import torch

from data_tools.errors import PipelineInputError
from models.registry import build_model, count_parameters
from models.unet import COIL_WIDE_ENCODER, ModifiedUNet


@pytest.mark.parametrize("name, kwargs, expected", [
    ("unet", {}, 133_835_457),
    ("unet_coil_wide", {}, 175_761_360),
    ("unet", dict(in_ch=16, out_ch=16), 133_845_072),
])
def test_parameter_counts(name, kwargs, expected):
    with torch.device("meta"):  # no memory and no init cost for the 134-176 M parameters
        net = build_model(name, **kwargs)
    assert count_parameters(net) == expected


def test_coil_wide_encoder():
    with torch.device("meta"):
        net = build_model("unet_coil_wide")
    assert [blk[0][0].out_channels for blk in net.down] == list(COIL_WIDE_ENCODER)
    assert net.down[0][0][0].in_channels == 16 and net.head.out_channels == 16


def test_six_pools_bottleneck_and_shape():
    torch.manual_seed(0)
    net = ModifiedUNet().eval()
    seen = {}
    net.bottom.register_forward_hook(lambda m, i, o: seen.update(bottom=o.shape))  # returns None
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape
    assert seen["bottom"][-2:] == (1, 1)  # 64 / 2**6
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in net.modules()) == 1 and net.levels == 6


def test_bottleneck_is_4x4_for_256_input():
    # A slim network with the same six-level topology keeps this cheap on CPU.
    net = ModifiedUNet(encoder=(2,) * 6, bottom=2, decoder=(2,) * 6).eval()
    seen = {}
    net.bottom.register_forward_hook(lambda m, i, o: seen.update(bottom=o.shape))  # returns None
    with torch.no_grad():
        y = net(torch.rand(1, 1, 256, 256))
    assert seen["bottom"][-2:] == (4, 4) and y.shape == (1, 1, 256, 256)


def test_no_global_skip():
    net = ModifiedUNet(encoder=(2,) * 6, bottom=2, decoder=(2,) * 6).eval()
    torch.nn.init.zeros_(net.head.weight)
    torch.nn.init.zeros_(net.head.bias)
    assert torch.count_nonzero(net(torch.rand(1, 1, 64, 64))) == 0


def test_bad_input_size_and_levels():
    net = ModifiedUNet(encoder=(2,) * 6, bottom=2, decoder=(2,) * 6)
    with pytest.raises(PipelineInputError, match="multiples of 64"):
        net(torch.rand(1, 1, 96, 100))
    with pytest.raises(PipelineInputError, match="levels"):
        ModifiedUNet(encoder=(4, 8), decoder=(8,))


def test_residual_option_starts_at_identity_with_the_same_parameters():
    kw = dict(encoder=(4, 8), bottom=8, decoder=(8, 4))
    plain, res = ModifiedUNet(**kw), ModifiedUNet(**kw, residual=True).eval()
    assert count_parameters(plain) == count_parameters(res)
    x = torch.rand(2, 1, 16, 16)
    assert torch.equal(res(x), x)
    res.head.bias.data.fill_(0.5)
    assert torch.allclose(res(x), x + 0.5)
    with pytest.raises(PipelineInputError, match="in_ch == out_ch"):
        ModifiedUNet(in_ch=1, out_ch=2, residual=True, **kw)
