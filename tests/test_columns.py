"""`summary --columns` (torchinfo's col_names): which columns, in which order, in every format;
the cs231n VGG16 table's weights column; fractional strides; the footer's kind conventions."""

from __future__ import annotations

import csv
import io
import json

import pytest

# The cs231n notes' VGG16 walk-through counts weights only (no biases): K·K·C_in·C_out for a
# conv, in·out for a dense layer, in the order of the network.
CS231N_VGG16_WEIGHTS = [
    ("conv1_1", 3 * 3 * 3 * 64),        # 1,728
    ("conv1_2", 3 * 3 * 64 * 64),       # 36,864
    ("conv2_1", 3 * 3 * 64 * 128),      # 73,728
    ("conv2_2", 3 * 3 * 128 * 128),     # 147,456
    ("conv3_1", 3 * 3 * 128 * 256),     # 294,912
    ("conv3_2", 3 * 3 * 256 * 256),     # 589,824
    ("conv3_3", 3 * 3 * 256 * 256),     # 589,824
    ("conv4_1", 3 * 3 * 256 * 512),     # 1,179,648
    ("conv4_2", 3 * 3 * 512 * 512),     # 2,359,296
    ("conv4_3", 3 * 3 * 512 * 512),
    ("conv5_1", 3 * 3 * 512 * 512),
    ("conv5_2", 3 * 3 * 512 * 512),
    ("conv5_3", 3 * 3 * 512 * 512),
    ("fc6", 7 * 7 * 512 * 4096),        # 102,760,448
    ("fc7", 4096 * 4096),               # 16,777,216
    ("fc8", 4096 * 1000),               # 4,096,000
]
# One bias per output channel or unit.
VGG16_BIASES = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512, 4096, 4096, 1000]


def _table(text: str) -> tuple[list[str], list[list[str]]]:
    """Header words and the rows (split on runs of spaces) of a summary table in a pipe."""
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if line.lstrip().startswith("Layer"))
    rows = []
    for line in lines[head + 2:]:
        if not line.strip():
            break
        rows.append(line.split())
    return lines[head].split(), rows


def test_cs231n_vgg16_weights_column_row_by_row(run):
    result = run("summary", "vgg16", "--columns", "weights")
    assert result.exit_code == 0
    header, rows = _table(result.stdout)
    assert header == ["Layer", "Type", "Weights"]
    weighted = [row for row in rows if row[1] in ("conv2d", "dense")]
    assert [int(row[2].replace(",", "")) for row in weighted] == \
        [w for _, w in CS231N_VGG16_WEIGHTS]
    assert weighted[0][2] == "1,728"  # not 1,792: the bias is not in this column
    # every other row has no weights: shown as —
    assert all(row[2] == "—" for row in rows if row[1] not in ("conv2d", "dense"))


def test_vgg16_biases_apart_and_weights_plus_biases_is_params(run):
    result = run("summary", "vgg16", "--columns", "weights,biases,params", "--format", "csv")
    assert result.exit_code == 0
    records = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(records[0]) == ["name", "type", "weights", "biases", "params"]
    weighted = [r for r in records if r["type"] in ("conv2d", "dense")]
    assert [int(r["weights"]) for r in weighted] == [w for _, w in CS231N_VGG16_WEIGHTS]
    assert [int(r["biases"]) for r in weighted] == VGG16_BIASES
    for r in records:
        assert int(r["weights"]) + int(r["biases"]) == int(r["params"])
    assert sum(int(r["weights"]) for r in records) == 138_344_128
    assert sum(int(r["params"]) for r in records) == 138_357_544


def test_default_is_todays_table(run):
    default = run("summary", "resnet18", "--depth", "1").stdout
    spelled = run("summary", "resnet18", "--depth", "1", "--columns",
                  "input,output,params,macs,activations,rf").stdout
    assert default == spelled
    for fmt in ("csv", "markdown"):
        # markdown: the same table; csv without --columns keeps its historic fields
        assert run("summary", "lenet5", "--format", fmt).exit_code == 0
    assert run("summary", "lenet5", "--format", "markdown").stdout == run(
        "summary", "lenet5", "--format", "markdown", "--columns",
        "input,output,params,macs,activations,rf").stdout


def test_order_and_selection_in_every_format(run):
    args = ["summary", "lenet5", "--columns", "macs,output,kernel"]
    header, rows = _table(run(*args).stdout)
    assert header == ["Layer", "Type", "MACs", "Output", "Kernel"]
    conv1 = next(row for row in rows if row[0] == "conv1")
    # LeNet-5 C1: 28·28·6·5·5·1 MACs, 6×28×28 out, a 5×5 kernel
    assert conv1 == ["conv1", "conv2d", "117,600", "6×28×28", "5×5"]
    relu = next(row for row in rows if row[1] == "relu")
    assert relu[2] == "—" and relu[4] == "—"

    markdown = run(*args, "--format", "markdown").stdout
    assert "| Layer | Type | MACs | Output | Kernel |" in markdown
    assert "| conv1 | conv2d | 117,600 | 6×28×28 | 5×5 |" in markdown

    text = run(*args, "--format", "csv").stdout
    records = list(csv.reader(io.StringIO(text)))
    assert records[0] == ["name", "type", "macs", "output_shape", "kernel"]
    assert ["conv1", "conv2d", "117600", "6x28x28", "5x5"] in records


def test_flops_trainable_bytes_and_rf(run):
    text = run("summary", "resnet18", "--columns", "trainable,params,flops,macs,bytes,rf",
               "--dtype", "float16", "--format", "csv").stdout
    records = list(csv.DictReader(io.StringIO(text)))
    assert list(records[0]) == ["name", "type", "trainable_params", "params", "flops", "macs",
                                "activation_bytes", "receptive_field", "effective_stride"]
    bn1 = next(r for r in records if r["name"] == "bn1")
    # γ, β trainable on 64 channels; running mean and variance not
    assert (int(bn1["trainable_params"]), int(bn1["params"])) == (128, 256)
    conv1 = next(r for r in records if r["name"] == "conv1")
    # 112·112·64·7·7·3 MACs; 64×112×112 values of 2 bytes; RF 7, stride 2
    assert int(conv1["macs"]) == 112 * 112 * 64 * 7 * 7 * 3
    assert int(conv1["flops"]) == 2 * 112 * 112 * 64 * 7 * 7 * 3
    assert int(conv1["activation_bytes"]) == 64 * 112 * 112 * 2
    assert (conv1["receptive_field"], conv1["effective_stride"]) == ("7x7", "2x2")
    assert int(records[0]["activation_bytes"]) == 3 * 224 * 224 * 2  # the input row


def test_json_keeps_every_field(run):
    plain = json.loads(run("summary", "lenet5", "--format", "json").stdout)
    chosen = json.loads(run("summary", "lenet5", "--format", "json", "--columns",
                            "weights").stdout)
    assert plain == chosen
    conv1 = plain["layers"][0]
    assert (conv1["weights"], conv1["biases"], conv1["kernel"]) == (150, 6, [5, 5])


def test_totals_footer_unchanged(run):
    default = run("summary", "vgg16").stdout
    chosen = run("summary", "vgg16", "--columns", "weights,biases").stdout
    footer = default[default.index("Total params:"):]
    assert chosen.endswith(footer)


@pytest.mark.parametrize("value, says", [
    ("weights,foo", "unknown column 'foo'"),
    ("weights,weights", "column 'weights' is given twice"),
    ("", "an empty column name"),
    ("macs,,output", "an empty column name"),
])
def test_bad_columns_are_one_usage_line(run, value, says):
    result = run("summary", "lenet5", "--columns", value)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert says in result.stderr
    assert ("valid: input, output, kernel, params, weights, biases, trainable, macs, flops, "
            "activations, bytes, rf") in result.stderr


def test_help_defines_every_column(run):
    text = " ".join(run("summary", "--help").stdout.split())
    for name in ("input", "output", "kernel", "params", "weights", "biases", "trainable",
                 "macs", "flops", "activations", "bytes", "rf"):
        assert f"{name} = " in text


def test_many_columns_fit_80_in_a_terminal():
    from tests.test_fit_terminal import in_terminal, widest
    text = in_terminal(["summary", "vgg16", "--columns",
                        "kernel,output,weights,biases,trainable,flops,bytes,rf"], 80,
                       columns=80)
    assert widest(text) <= 80
    assert "Hidden to fit 80 columns" in text and "Traceback" not in text
    assert "fc6" in text and "Weights" in text  # name and the wanted counts stay


# ---- fractional strides and the conventions of the modern kinds -----------------------------
UPSAMPLED = """name: up
input: [1, 8, 8]
layers:
  - conv: {filters: 2, kernel: 3, padding: 1}
  - upsample: {scale: 2}
  - pad: {padding: 1}
  - crop: {size: [16, 16]}
"""


def test_a_fractional_stride_prints_as_a_fraction(run, write_spec):
    path = write_spec(UPSAMPLED)
    _, rows = _table(run("summary", path).stdout)
    up = next(row for row in rows if row[1] == "upsample")
    # upsampling by 2: neighbouring outputs are half an input pixel apart
    assert up[-1] == "/(1/2)"
    markdown = run("summary", path, "--format", "markdown").stdout
    assert " /(1/2) |" in markdown
    records = list(csv.DictReader(io.StringIO(run("summary", path, "--format", "csv").stdout)))
    assert next(r for r in records if r["type"] == "upsample")["effective_stride"] == "1/2x1/2"
    assert "No MACs for upsampling, padding or cropping." in run("summary", path).stdout


def test_conv_transpose_and_mul_conventions_in_the_footer(run, write_spec):
    path = write_spec("""name: ct
input: [4, 6, 6]
layers:
  - mul: [[{global_avgpool: {}}, {conv: {filters: 4, kernel: 1}}, {sigmoid: {}}], []]
  - conv_transpose2d: {filters: 2, kernel: 3, stride: 2}
""")
    text = " ".join(run("summary", path).stdout.split())
    assert ("conv_transpose2d MACs = H_in·W_in·C_in·K_h·K_w·C_out/groups (each input pixel "
            "scatters one kernel); no MACs for mul.") in text
    markdown = run("summary", path, "--format", "markdown").stdout
    assert "_conv_transpose2d MACs = H_in·W_in·C_in·K_h·K_w·C_out/groups" in markdown
    # the classics say nothing of these kinds
    assert "no MACs for" not in run("summary", "vgg16").stdout.lower()


def test_factorize_points_at_inception_v3_and_its_kernels_agree(run):
    """The blocks `archcalc factorize` names use the factorised kernels it says they do, as
    the kernel column of `summary inception_v3` shows."""
    text = " ".join(run("factorize", "--input", "64x35x35", "--kernel", "5",
                        "--filters", "64").stdout.split())
    assert "`archcalc summary inception_v3`" in text
    records = list(csv.DictReader(io.StringIO(run(
        "summary", "inception_v3", "--columns", "kernel,output", "--format", "csv").stdout)))
    kernel = {r["name"]: r["kernel"] for r in records}
    for block in ("Mixed_5b", "Mixed_5c", "Mixed_5d"):
        assert f"{block}" in text
        # 1×1 reduce, then two 3×3s: a 5×5 field
        assert [kernel[f"{block}.branch3x3dbl_{i}.conv"] for i in (1, 2, 3)] == \
            ["1x1", "3x3", "3x3"]
        assert kernel[f"{block}.branch5x5_2.conv"] == "5x5"  # torchvision keeps a 5×5 too
    assert "Mixed_6b to Mixed_6e" in text
    for block in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
        assert [kernel[f"{block}.branch7x7_{i}.conv"] for i in (2, 3)] == ["1x7", "7x1"]
        assert [kernel[f"{block}.branch7x7dbl_{i}.conv"] for i in (2, 3, 4, 5)] == \
            ["7x1", "1x7", "7x1", "1x7"]
    for name in ("branch3x3dbl_2", "branch3x3dbl_3", "branch7x7_2", "branch7x7_3",
                 "branch7x7dbl_2", "branch7x7dbl_5"):
        assert name in text


def test_the_footer_says_how_the_field_runs_through_the_new_kinds(run):
    adaptive = " ".join(run("summary", "alexnet_torchvision").stdout.split())
    assert ("RF: adaptive pooling's window is its largest bin, its stride the largest step "
            "between bins.") in adaptive
    unet = " ".join(run("summary", "unet").stdout.split())
    assert "RF: upsampling and transposed convs divide the stride" in unet
    assert "RF:" not in run("summary", "vgg16").stdout
