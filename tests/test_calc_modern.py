"""The calculator on the kinds of issue 9 (Keras's habit: input_shape + fields → expected
output shape, parameters and MACs), each figure computed by hand in the comment beside it;
their errors; the mul merge; receptive fields through upsampling, transposed convolution and
adaptive pooling; and the note that names an LRN's form.

PyTorch, when installed, is a second oracle for the output sizes (ConvTranspose2d,
Adaptive*Pool2d, F.interpolate, F.pad).
"""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

from archcalc.calc import analyze
from archcalc.calc.shapes import adaptive_largest_bin, adaptive_largest_step
from archcalc.errors import ShapeError
from archcalc.spec import loads


def net(input_shape, *layers, text: str | None = None):
    """Analyse a spec of `layers` (dicts as YAML writes them) on `input_shape` (C×H×W)."""
    body = text if text is not None else json.dumps({
        "name": "t", "input": list(input_shape), "layers": list(layers)})
    return analyze(loads(body, json_mode=text is None))


def last(input_shape, layer):
    return net(input_shape, layer).rows[-1]


# (input, layer, output shape, weights, biases, MACs, kernel)
CASES = {
    # U-Net's up-convolution: (28 − 1)·2 − 0 + 1·(2 − 1) + 0 + 1 = 56; weights
    # C_in·C_out·Kh·Kw = 1024·512·2·2 = 2,097,152; MACs H_in·W_in·C_in·Kh·Kw·C_out =
    # 28·28·1024·4·512 = 1,644,167,168.
    "deconv_unet": ((1024, 28, 28), {"deconv": {"filters": 512, "kernel": 2, "stride": 2}},
                    (512, 56, 56), 2_097_152, 512, 1_644_167_168, (2, 2)),
    # (7 − 1)·2 − 2·1 + 1·(3 − 1) + 1 + 1 = 14; weights 16·8·3·3 = 1,152;
    # MACs 7·7·16·9·8 = 56,448.
    "deconv_output_padding": ((16, 7, 7), {"conv_transpose2d": {
        "filters": 8, "kernel": 3, "stride": 2, "padding": 1, "output_padding": 1}},
        (8, 14, 14), 1_152, 8, 56_448, (3, 3)),
    # groups 2, no bias: (5 − 1)·1 + 3 = 7; weights C_in·(C_out/g)·9 = 4·3·9 = 108;
    # MACs 5·5·4·9·3 = 2,700.
    "deconv_groups": ((4, 5, 5), {"deconv": {"filters": 6, "kernel": 3, "groups": 2,
                                             "bias": False}},
                      (6, 7, 7), 108, 0, 2_700, (3, 3)),
    # dilation 2 (span 5), stride 3, pads [top 1, bottom 0, left 0, right 2], output_padding
    # [2, 0]: H (4 − 1)·3 − 1 − 0 + 2·(3 − 1) + 2 + 1 = 15, W (5 − 1)·3 − 0 − 2 + 4 + 0 + 1 = 15;
    # weights 2·1·9 = 18; MACs 4·5·2·9·1 = 360.
    "deconv_dilated_asymmetric": ((2, 4, 5), {"deconv": {
        "filters": 1, "kernel": 3, "stride": 3, "dilation": 2, "padding": [1, 0, 0, 2],
        "output_padding": [2, 0]}}, (1, 15, 15), 18, 1, 360, (3, 3)),
    # torchvision AlexNet's AdaptiveAvgPool2d(6) on 13×13: bins [⌊13i/6⌋, ⌈13(i+1)/6⌉) are
    # [0,3) [2,5) [4,7) [6,9) [8,11) [10,13): 3 pixels each.
    "adaptive_alexnet": ((256, 13, 13), {"adaptive_avgpool": 6}, (256, 6, 6), 0, 0, 0, (3, 3)),
    # 7 → 3: [0,3) [2,5) [4,7) (3 each); 5 → 1: the whole 5.
    "adaptive_max_pair": ((2, 7, 5), {"adaptive_maxpool": [3, 1]}, (2, 3, 1), 0, 0, 0, (3, 5)),
    # 224 → 7: 32 each (VGG's 7×7 at 224: the identity's sizes, not the identity's window).
    "adaptive_even": ((512, 224, 224), {"adaptive_avgpool": 7}, (512, 7, 7), 0, 0, 0, (32, 32)),
    # 3 → 7 (more bins than pixels): [0,1) [0,1) [0,2) [1,2) [1,3) [2,3) [2,3): largest 2.
    "adaptive_grow": ((1, 3, 3), {"adaptive_avgpool": 7}, (1, 7, 7), 0, 0, 0, (2, 2)),
    "upsample_scale": ((3, 5, 7), {"upsample": 2}, (3, 10, 14), 0, 0, 0, None),
    "upsample_pair": ((3, 5, 7), {"upsample": [2, 3]}, (3, 10, 21), 0, 0, 0, None),
    "upsample_size_bilinear": ((3, 5, 7), {"upsample": {"size": [9, 4], "mode": "bilinear"}},
                               (3, 9, 4), 0, 0, 0, None),
    # U-Net's copy-and-crop: 568 → 392 centred.
    "crop_size": ((64, 568, 568), {"crop": [392, 392]}, (64, 392, 392), 0, 0, 0, None),
    # 10 − 1 − 2 = 7 rows, 10 − 3 − 4 = 3 columns.
    "crop_sides": ((2, 10, 10), {"crop": {"cropping": [1, 2, 3, 4]}}, (2, 7, 3), 0, 0, 0, None),
    "crop_all": ((2, 10, 10), {"crop": {"cropping": 2}}, (2, 6, 6), 0, 0, 0, None),
    # The lecture notes' symmetric padding (2, 2) of a 3×3: 7×7.
    "pad_symmetric": ((1, 3, 3), {"pad": {"padding": 2, "mode": "symmetric"}}, (1, 7, 7),
                      0, 0, 0, None),
    "pad_rows_cols": ((1, 3, 3), {"pad": [2, 1]}, (1, 7, 5), 0, 0, 0, None),
    # reflect: top 1 < 3, left 2 and right 3 < 4: 3 + 1 = 4 rows, 4 + 5 = 9 columns.
    "pad_reflect": ((1, 3, 4), {"pad": {"padding": [1, 0, 2, 3], "mode": "reflect"}},
                    (1, 4, 9), 0, 0, 0, None),
    "pad_replicate_wide": ((1, 2, 2), {"pad": {"padding": 10, "mode": "replicate"}},
                           (1, 22, 22), 0, 0, 0, None),
    # conv2d padding_mode changes what the border holds, not the arithmetic:
    # 4·3·3·3 = 108 weights, 8·8·4·27 = 6,912 MACs.
    "conv_reflect": ((3, 8, 8), {"conv": {"filters": 4, "kernel": 3, "padding": 1,
                                          "padding_mode": "reflect"}},
                     (4, 8, 8), 108, 4, 6_912, (3, 3)),
    "conv_circular_same": ((3, 8, 8), {"conv": {"filters": 4, "kernel": 5, "padding": "same",
                                                "padding_mode": "circular"}},
                           (4, 8, 8), 300, 4, 8 * 8 * 4 * 75, (5, 5)),
    **{kind: ((3, 4, 5), kind, (3, 4, 5), 0, 0, 0, None)
       for kind in ("relu6", "hardsigmoid", "hardswish", "silu", "swish", "gelu")},
    "gelu_tanh": ((3, 4, 5), {"gelu": {"approximate": "tanh"}}, (3, 4, 5), 0, 0, 0, None),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_new_kind_arithmetic(case):
    input_shape, layer, out, weights, biases, macs, kernel = CASES[case]
    row = last(input_shape, layer)
    assert row.output_shape == out
    assert (row.weights, row.biases, row.macs, row.kernel) == (weights, biases, macs, kernel)
    assert row.params == row.trainable_params == weights + biases
    assert row.as_dict()["kernel"] == (list(kernel) if kernel else None)


@pytest.mark.parametrize("case", sorted(c for c in CASES if not c.startswith(
    ("conv_", "relu6", "hard", "silu", "swish", "gelu"))))
def test_output_sizes_agree_with_pytorch(case):
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    input_shape, layer, out = CASES[case][:3]
    (kind, fields), = layer.items()
    fields = fields if isinstance(fields, dict) else None
    x = torch.zeros((1,) + input_shape)
    if kind in ("deconv", "conv_transpose2d"):
        pads = fields.get("padding", 0)
        # PyTorch pads both sides alike: for [top, bottom, left, right], pad 0 and crop after.
        top, bottom, left, right = pads if isinstance(pads, list) else [pads] * 4
        module = torch.nn.ConvTranspose2d(
            input_shape[0], fields["filters"], fields["kernel"], fields.get("stride", 1), 0,
            fields.get("output_padding", 0), fields.get("groups", 1), False,
            fields.get("dilation", 1))
        y = module(x)
        y = y[..., top:y.shape[2] - bottom, left:y.shape[3] - right]
    elif kind.startswith("adaptive"):
        y = functional.adaptive_avg_pool2d(x, layer[kind])
    elif kind == "upsample":
        if fields is None:
            y = functional.interpolate(x, scale_factor=layer[kind], mode="nearest")
        else:
            y = functional.interpolate(x, size=fields["size"], mode=fields["mode"])
    elif kind == "crop":
        y = x[..., :out[1], :out[2]]  # the calculator's size is the point here
    else:  # pad: the size does not depend on the mode
        pads = fields["padding"] if fields else layer[kind]
        pads = [pads] * 4 if isinstance(pads, int) else (
            [pads[0], pads[0], pads[1], pads[1]] if len(pads) == 2 else pads)
        top, bottom, left, right = pads
        y = functional.pad(x, (left, right, top, bottom))
    assert tuple(y.shape[1:]) == out


def test_adaptive_closed_forms_equal_the_bins_enumerated():
    """PyTorch's bins [⌊i·H/h⌋, ⌈(i+1)·H/h⌉) enumerated for every H, h up to 40."""
    for size in range(1, 41):
        for out in range(1, 41):
            bins = [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]
            assert adaptive_largest_bin(size, out) == max(e - s for s, e in bins), (size, out)
            steps = [b[0] - a[0] for a, b in zip(bins, bins[1:])] or [size]
            assert adaptive_largest_step(size, out) == max(steps), (size, out)


# ---- errors -------------------------------------------------------------------------------
ERRORS = {
    # reflect copies size − 1 pixels: pad 3 on a 3-pixel axis is one too many.
    "conv_reflect_pad": ((1, 3, 3), {"conv": {"filters": 1, "kernel": 1, "padding": 3,
                                              "padding_mode": "reflect"}},
                         ["padding_mode reflect needs every pad < the input size", "top pad 3",
                          "input H = 3", "padding_mode: replicate"]),
    "conv_circular_pad": ((1, 5, 3), {"conv": {"filters": 1, "kernel": 1, "padding": [0, 4],
                                               "padding_mode": "circular"}},
                          ["circular needs every pad <= the input size", "left pad 4 along W",
                           "input W = 3"]),
    "pad_reflect": ((1, 3, 3), {"pad": {"padding": 3, "mode": "reflect"}},
                    ["mode reflect needs every pad < the input size", "top pad 3 along H",
                     "input H = 3"]),
    "pad_symmetric": ((1, 3, 4), {"pad": {"padding": [0, 0, 0, 5], "mode": "symmetric"}},
                      ["mode symmetric needs every pad <= the input size", "right pad 5 along W",
                       "input W = 4"]),
    "crop_size": ((1, 4, 6), {"crop": [5, 5]},
                  ["crop to 5×5 is larger than the input 4×6", "crop to at most 4×6"]),
    "crop_sides": ((1, 4, 6), {"crop": {"cropping": [2, 2, 0, 0]}},
                   ["cropping [top 2, bottom 2, left 0, right 0] removes the whole 4×6 input",
                    "leaves 0×6"]),
    # (1 − 1)·1 − 2·1 + 1·(1 − 1) + 0 + 1 = -1
    "deconv_cropped_away": ((1, 1, 1), {"deconv": {"filters": 1, "kernel": 1, "padding": 1}},
                            ["the padding crops the whole output along H",
                             "(1 − 1)·1 − 2·1 + 1·(1 − 1) + 0 + 1 = -1",
                             "use at most 0 padding along H (top + bottom)"]),
    "deconv_groups": ((3, 4, 4), {"deconv": {"filters": 4, "kernel": 2, "groups": 2}},
                      ["input channels (3) not divisible by groups (2)"]),
    # (10⁶ − 1)·10⁴ + 1 = 9,999,990,001 rows
    "deconv_too_large": ((1, 1_000_000, 1), {"deconv": {"filters": 1, "kernel": 1,
                                                        "stride": 10_000}},
                         ["conv_transpose2d gives 9,999,990,001 along H",
                          "more than 1,000,000,000"]),
    "upsample_too_large": ((1, 100_000, 2), {"upsample": [100_000, 1]},
                           ["upsample gives 10,000,000,000 along H", "smaller scale or size"]),
    "adaptive_flat": ((12,), {"adaptive_avgpool": 2},
                      ["adaptive_avgpool needs a C×H×W input, got 12"]),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_invalid_cases_fail_with_the_numbers_and_a_fix(case):
    input_shape, layer, fragments = ERRORS[case]
    with pytest.raises(ShapeError) as caught:
        last(input_shape, layer)
    assert caught.value.fix
    for fragment in fragments:
        assert fragment in caught.value.render(), (fragment, caught.value.render())


def test_the_limits_are_exactly_where_pytorch_and_numpy_put_them():
    """reflect: pad = size − 1 passes, symmetric and circular: pad = size passes."""
    assert last((1, 3, 3), {"conv": {"filters": 1, "kernel": 1, "padding": 2,
                                     "padding_mode": "reflect"}}).output_shape == (1, 7, 7)
    assert last((1, 3, 3), {"conv": {"filters": 1, "kernel": 1, "padding": 3,
                                     "padding_mode": "circular"}}).output_shape == (1, 9, 9)
    assert last((1, 3, 3), {"pad": {"padding": 3, "mode": "symmetric"}}).output_shape == (1, 9, 9)
    assert last((1, 3, 3), {"pad": {"padding": 2, "mode": "reflect"}}).output_shape == (1, 7, 7)
    assert last((1, 4, 6), {"crop": [4, 6]}).output_shape == (1, 4, 6)


@pytest.mark.parametrize("layers, fragments", [
    ("  - pad: {padding: 9, mode: reflect}\n",
     [":4:", "layer 'pad1'", "mode reflect needs every pad < the input size",
      "top pad 9 along H, input H = 8"]),
    ("  - crop: [9, 9]\n", [":4:", "layer 'crop1'", "crop to 9×9 is larger than the input 8×8"]),
    ("  - conv: {filters: 2, kernel: 3}\n  - mul:\n    - []\n    - [{conv: {filters: 2, kernel: 3}}]\n",
     [":5:", "layer 'mul1'", "gives 2×6×6", "gives 2×4×4", "C×1×1 gate"]),
])
def test_cli_summary_rejects_in_one_line(run, write_spec, layers, fragments):
    path = write_spec("name: t\ninput: [1, 8, 8]\nlayers:\n" + layers, "bad.yaml")
    result = run("summary", path)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments + ["bad.yaml", "(fix:"]:
        assert fragment in errors[0], (fragment, errors[0])


# ---- the mul merge ------------------------------------------------------------------------
SE = [{"global_avgpool": {}}, {"conv": {"filters": 2, "kernel": 1}}, "relu",
      {"conv": {"filters": 8, "kernel": 1}}, "sigmoid"]


def test_mul_broadcasts_a_squeeze_and_excitation_gate():
    rows = {r.name: r for r in net((8, 6, 6), {"mul": [[], SE]}).rows}
    mul = rows["mul1"]
    assert mul.output_shape == (8, 6, 6)
    assert (mul.macs, mul.params) == (0, 0)
    assert mul.activations == 8 * 6 * 6  # a new tensor
    # The gate sees the whole 6×6 map: so does the product; but its pixels are the feature
    # map's, one input pixel apart (not the gate's 6), so a 3×3 after it adds 2·1.
    assert mul.receptive_field == (6, 6)
    assert mul.effective_stride == (1, 1)
    after = net((8, 6, 6), {"mul": [SE, []]}, {"conv": {"filters": 1, "kernel": 3}}).rows[-1]
    assert (after.receptive_field, after.effective_stride) == ((8, 8), (1, 1))


def test_mul_of_equal_shapes_and_of_gates_alone():
    conv = {"conv": {"filters": 4, "kernel": 3, "padding": 1}}
    assert net((4, 5, 5), {"mul": [[conv], [conv], []]}).rows[-1].output_shape == (4, 5, 5)
    gate = [{"global_avgpool": {}}]
    assert net((4, 5, 5), {"mul": [gate, gate]}).rows[-1].output_shape == (4, 1, 1)
    # The gate may come first: the output is still the full map.
    assert net((8, 6, 6), {"mul": [SE, []]}).rows[-1].output_shape == (8, 6, 6)


@pytest.mark.parametrize("branches, fragments", [
    # a gate with 3 channels over 8
    ([[], [{"global_avgpool": {}}, {"conv": {"filters": 3, "kernel": 1}}]],
     ["branch 1 (identity) gives 8×6×6", "branch 2 (ending at conv1) gives 3×1×1",
      "make the gate 8×1×1"]),
    # different H×W that are not 1×1
    ([[], [{"maxpool": {"kernel": 2}}]],
     ["branch 1 (identity) gives 8×6×6", "branch 2 (ending at maxpool1) gives 8×3×3"]),
    # flat against C×H×W
    ([[], [{"global_avgpool": {"keepdims": False}}]],
     ["gives 8×6×6", "gives 8 "]),
])
def test_mul_mismatch_names_both_shapes(branches, fragments):
    with pytest.raises(ShapeError) as caught:
        net((8, 6, 6), {"mul": branches})
    text = caught.value.render() + " "
    assert "mul needs equal shapes or a C×1×1 gate with the same C" in text
    for fragment in fragments:
        assert fragment in text, (fragment, text)


def test_concat_with_an_identity_branch_is_a_dense_block_step():
    """DenseNet: concat([], [bn, relu, conv 32]) adds 32 channels to the input's 64."""
    layer = {"concat": [[], [{"bn": {}}, "relu", {"conv": {"filters": 32, "kernel": 3,
                                                           "padding": 1}}]]}
    assert net((64, 8, 8), layer).rows[-1].output_shape == (96, 8, 8)


# ---- receptive fields ---------------------------------------------------------------------
CONV3 = {"conv": {"filters": 1, "kernel": 3, "padding": 1}}


@pytest.mark.parametrize("layers, rf, stride", [
    # nearest ×2: one input pixel, outputs 1/2 apart; conv3 after it: 1 + 2·1/2 = 2.
    ([{"upsample": 2}], 1, Fraction(1, 2)),
    ([{"upsample": 2}, CONV3], 2, Fraction(1, 2)),
    # deconv k2 s2: output o gets input ⌊o/2⌋ alone (⌈2/2⌉ = 1); then 1 + 2·1/2 = 2.
    ([{"deconv": {"filters": 1, "kernel": 2, "stride": 2}}], 1, Fraction(1, 2)),
    ([{"deconv": {"filters": 1, "kernel": 2, "stride": 2}}, CONV3], 2, Fraction(1, 2)),
    # deconv k3 s2: an even output gets inputs o/2 − 1 and o/2 (⌈3/2⌉ = 2); then 2 + 1 = 3.
    ([{"deconv": {"filters": 1, "kernel": 3, "stride": 2}}], 2, Fraction(1, 2)),
    ([{"deconv": {"filters": 1, "kernel": 3, "stride": 2}}, CONV3], 3, Fraction(1, 2)),
    # bilinear ×2 reads two neighbours: 2; then 2 + 2·1/2 = 3.
    ([{"upsample": {"scale": 2, "mode": "bilinear"}}], 2, Fraction(1, 2)),
    ([{"upsample": {"scale": 2, "mode": "bilinear"}}, CONV3], 3, Fraction(1, 2)),
    # adaptive 7 → 3: bins [0,3) [2,5) [4,7), starts 2 apart; a 2-wide conv after it sees
    # [0,5) or [2,7): 3 + 1·2 = 5.
    ([{"adaptive_avgpool": 3}], 3, 2),
    ([{"adaptive_avgpool": 3}, {"conv": {"filters": 1, "kernel": 2}}], 5, 2),
    # conv3 then ×3 then a 2-wide conv: 3 + 1·1/3 → 4 (the ceiling), 1/3 apart.
    ([CONV3, {"upsample": 3}, {"conv": {"filters": 1, "kernel": 2}}], 4, Fraction(1, 3)),
    # down by 2 and back up: the stride is whole again (an int, not a Fraction).
    ([{"conv": {"filters": 1, "kernel": 3, "stride": 2}}, {"upsample": 2}], 3, 1),
    # crop and pad have no window.
    ([CONV3, {"pad": 2}, {"crop": {"cropping": 1}}], 3, 1),
])
def test_receptive_field_through_upsampling(layers, rf, stride):
    row = net((1, 7, 7), *layers).rows[-1]
    assert row.receptive_field == (rf, rf)
    assert row.effective_stride == (stride, stride)
    assert type(row.effective_stride[0]) is type(stride)
    expected = stride if isinstance(stride, int) else f"{stride.numerator}/{stride.denominator}"
    assert row.as_dict()["effective_stride"] == [expected, expected]


def test_align_corners_steps_by_the_corners():
    """align_corners: src = dst·(in − 1)/(out − 1): 7 → 14 is 6/13 apart, not 1/2."""
    row = net((1, 7, 7), {"upsample": {"scale": 2, "mode": "bilinear",
                                       "align_corners": True}}).rows[-1]
    assert row.effective_stride == (Fraction(6, 13), Fraction(6, 13))


# ---- weights and biases -------------------------------------------------------------------
def test_weights_and_biases_split_the_parameters():
    rows = {r.name: r for r in net((3, 8, 8), {"conv": {"filters": 4, "kernel": 3}}, "bn",
                                   "flatten", {"dense": 10}).rows}
    # conv 4·3·3·3 = 108 + 4; bn γ 4 | β 4 | running stats 8; dense 4·6·6·10 = 1,440 + 10.
    assert (rows["conv1"].weights, rows["conv1"].biases) == (108, 4)
    assert (rows["bn1"].weights, rows["bn1"].biases, rows["bn1"].non_trainable_params) == (4, 4, 8)
    assert (rows["fc1"].weights, rows["fc1"].biases) == (1_440, 10)
    for row in rows.values():
        buffers = 8 if row.type == "batchnorm" else 0
        assert row.weights + row.biases == row.params - buffers


def test_frozen_layer_keeps_its_weights_and_biases():
    row = last((3, 8, 8), {"conv": {"filters": 4, "kernel": 3, "trainable": False}})
    assert (row.weights, row.biases, row.trainable_params, row.non_trainable_params) == (
        108, 4, 0, 112)


# ---- the LRN note -------------------------------------------------------------------------
def test_lrn_note_names_the_form_once_per_form():
    paper = {"form": "sum", "k": 2, "alpha": 0.0001, "beta": 0.75, "size": 5}
    notes = net((8, 5, 5), {"lrn": {**paper, "name": "norm1"}},
                {"lrn": {**paper, "name": "norm2"}}, {"lrn": {"name": "norm3"}}).notes
    assert notes[:2] == [
        "norm1, norm2: lrn in the sum form (the AlexNet paper's): "
        "b = a / (2 + 0.0001·Σ a²)^0.75 over 5 channels",
        "norm3: lrn in the average form (PyTorch's alpha/size): "
        "b = a / (1 + 0.0001/5·Σ a²)^0.75 over 5 channels"]


def test_lrn_note_stays_one_line_for_many_layers():
    layers = [{"lrn": {"size": 3, "alpha": 0.00001}} for _ in range(6)]
    notes = net((4, 3, 3), *layers).notes
    assert notes == ["lrn1 and 5 more lrn layers: lrn in the average form (PyTorch's "
                     "alpha/size): b = a / (1 + 0.00001/3·Σ a²)^0.75 over 3 channels"]


def test_summary_prints_the_lrn_note(run, write_spec):
    path = write_spec("name: t\ninput: [8, 5, 5]\nlayers:\n"
                      "  - lrn: {name: norm1, form: sum, k: 2}\n", "lrn.yaml")
    result = run("summary", path)
    assert result.exit_code == 0
    assert "norm1: lrn in the sum form (the AlexNet paper's)" in result.stdout
