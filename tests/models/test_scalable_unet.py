"""Scalable grid U-Net (reference 000 §2.6, R12): Source Code 2/3 specs, skips, errors."""
import pytest
import torch

from data_tools.errors import PipelineInputError
from models.registry import build_model, count_parameters
from models.scalable_unet import ScalableUNet

SOURCE_CODE_2 = dict(filters=[64, 128, 256, 512, 1024, 1024, 1024, 512, 256, 128, 64], reps=[2] * 11,
                     kernel=3, dncnn_skip=False, sampling=True, Uskip=True)
SOURCE_CODE_3 = dict(filters=[64], reps=[18], kernel=3, dncnn_skip=True, sampling=False, Uskip=False)


def test_source_code_2_parameter_count_and_five_pools():
    with torch.device("meta"):
        net = build_model("scalable_unet", **SOURCE_CODE_2)
    assert count_parameters(net) == 82_439_873
    assert len(net.encoder) == 5 and len(net.decoder) == 5


def test_dncnn_special_case_has_no_sampling_and_adds_input():
    net = ScalableUNet(1, 1, **SOURCE_CODE_3).eval()
    kinds = {type(m) for m in net.modules()}
    assert torch.nn.MaxPool2d not in kinds and torch.nn.ConvTranspose2d not in kinds
    assert sum(isinstance(m, torch.nn.Conv2d) for m in net.modules()) == 18 + 1
    torch.nn.init.zeros_(net.head.weight)
    torch.nn.init.zeros_(net.head.bias)
    x = torch.rand(1, 1, 21, 17)  # no pooling: any size
    assert torch.equal(net(x), x)


@pytest.mark.parametrize("sampling, uskip", [(True, True), (True, False), (False, True), (False, False)])
def test_shapes_for_every_switch(sampling, uskip):
    net = ScalableUNet(1, 1, filters=[4, 8, 16, 8, 4], reps=[1, 2, 1, 2, 1], sampling=sampling,
                       Uskip=uskip).eval()
    x = torch.rand(2, 1, 16, 16)
    assert net(x).shape == x.shape


def test_skips_pair_block_i_with_depth_minus_1_minus_i():
    net = ScalableUNet(1, 1, filters=[4, 6, 10, 7, 5], reps=[1] * 5)
    # decoder block 3 sees its up-sampled 7 maps plus encoder block 1 (6 maps); block 4: 5 + 4.
    assert net.decoder[0][0][0].in_channels == 7 + 6
    assert net.decoder[1][0][0].in_channels == 5 + 4


def test_figure_18_reps_style_repeat_blocks():
    net = ScalableUNet(1, 1, filters=[2, 3, 4, 3, 2], reps=[1, 2, 3, 4, 5])
    assert [len(b) for b in net.encoder] == [1, 2] and len(net.bottom) == 3
    assert [len(b) for b in net.decoder] == [4, 5]


def test_bad_specs_raise():
    with pytest.raises(PipelineInputError, match="reps has 10 entries"):
        ScalableUNet(1, 1, filters=SOURCE_CODE_2["filters"], reps=[2] * 10)
    with pytest.raises(PipelineInputError, match="odd"):
        ScalableUNet(1, 1, filters=[4, 4], reps=[1, 1])
    with pytest.raises(PipelineInputError, match="dncnn_skip"):
        ScalableUNet(16, 1, filters=[4], reps=[1], dncnn_skip=True, sampling=False, Uskip=False)
    net = ScalableUNet(1, 1, filters=[4, 8, 4], reps=[1, 1, 1])
    with pytest.raises(PipelineInputError, match="multiples of 2"):
        net(torch.rand(1, 1, 15, 16))
