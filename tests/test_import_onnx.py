"""The ONNX importer (archcalc/importers/onnx_import.py): small torch modules exported with
torch.onnx.export(dynamo=False), loaded as specs, and analysed. The reference figures are
torch's own: its parameter counts (trainable; non-trainable = BN running mean and var), and,
from forward hooks, every Conv2d / ConvTranspose2d / Linear output shape and its MACs
(conv = H_out·W_out·C_out·K_h·K_w·C_in/groups; transposed = H_in·W_in·C_in·K_h·K_w·C_out/groups;
linear = in·out). Bad files: one line each (SpecError / ArchcalcError), never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from archcalc.calc import analyze
from archcalc.errors import ArchcalcError, SpecError
from archcalc.spec import load

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")
nn = torch.nn
from onnx import TensorProto, helper  # noqa: E402

from archcalc.importers import onnx_import  # noqa: E402

WEIGHTED = ("conv2d", "conv_transpose2d", "dense")
# torch's TorchScript exporter warns that it is legacy; it is the one the issue names
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning",
                                        "ignore::UserWarning", "ignore::FutureWarning")


# ---- helpers ------------------------------------------------------------------------------
def export(model, shape, path: Path, *, preserve: bool = True, **kw) -> str:
    """Export `model` (eval mode) at input 1×shape; PRESERVE keeps BatchNormalization nodes."""
    extra = {"training": torch.onnx.TrainingMode.PRESERVE} if preserve else {}
    torch.onnx.export(model.eval(), torch.randn(1, *shape), str(path), dynamo=False,
                      opset_version=kw.pop("opset_version", 17), **extra, **kw)
    return str(path)


def torch_reference(model, shape):
    """(trainable, non-trainable, MACs, [output shape of each conv/linear in call order])."""
    shapes, macs = [], []

    def hook(module, args, out):
        x = args[0]
        if isinstance(module, nn.ConvTranspose2d):
            kh, kw = module.kernel_size
            macs.append(x.shape[2] * x.shape[3] * module.in_channels * kh * kw
                        * module.out_channels // module.groups)
        elif isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            macs.append(out[0].numel() * kh * kw * module.in_channels // module.groups)
        else:
            macs.append(module.in_features * module.out_features)
        shapes.append(tuple(out.shape[1:]))

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.randn(1, *shape))
    for h in handles:
        h.remove()
    trainable = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean",
                                                                              "running_var")))
    return trainable, buffers, sum(macs), shapes


def imported(path: str, input_shape=None):
    """(trainable, non-trainable, MACs, [conv/dense output shapes in spec order], analysis)."""
    analysis = analyze(load(path, input_shape))
    rows = analysis.rows
    return (analysis.totals.trainable_params, analysis.totals.non_trainable_params,
            analysis.totals.macs, [r.output_shape for r in rows if r.type in WEIGHTED], analysis)


def assert_same(model, shape, path, in_order=True):
    """The imported figures equal torch's; `in_order`: the conv/linear shapes in call order
    (False where torch computes a later branch first: compare them as a multiset)."""
    mine, ref = imported(path), torch_reference(model, shape)
    if in_order:
        assert mine[:4] == ref
    else:
        assert mine[:3] == ref[:3] and sorted(mine[3]) == sorted(ref[3])
    with torch.no_grad():
        assert mine[4].output_shape == tuple(model(torch.randn(1, *shape)).shape[1:])
    return mine[4]


def kinds(analysis) -> list[str]:
    return [r.type for r in analysis.rows]


# ---- torch modules ------------------------------------------------------------------------
class Plain(nn.Module):
    """conv-bn-relu-pool ×2, dropout, linear; the flatten as torch.flatten or view(N, −1)."""

    def __init__(self, view: bool = False):
        super().__init__()
        self.view = view
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8, eps=1e-3, momentum=0.01)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 5, stride=2, padding=(1, 2), dilation=(1, 2))
        self.bn2 = nn.BatchNorm2d(16)
        self.drop = nn.Dropout(0.25)
        self.fc = nn.Linear(16 * 3 * 2, 10)  # W: (8 + 4 − 9)/2 + 1 = 2

    def forward(self, x):
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))
        x = torch.relu(self.bn2(self.conv2(x)))
        x = x.view(x.size(0), -1) if self.view else torch.flatten(x, 1)
        return torch.softmax(self.fc(self.drop(x)), dim=1)


def block(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(), nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                         nn.BatchNorm2d(cout))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.body1 = block(8, 8)
        self.body2 = block(8, 16, 2)
        self.down = nn.Sequential(nn.Conv2d(8, 16, 1, 2, bias=False), nn.BatchNorm2d(16))
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(self.body1(x) + x)
        x = torch.relu(self.body2(x) + self.down(x))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class Inception(nn.Module):
    """Four branches concatenated, one of them holding a residual fork of its own."""

    def __init__(self):
        super().__init__()
        self.b1 = nn.Conv2d(3, 4, 1)
        self.b2 = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1))
        self.b3a = nn.Conv2d(3, 5, 1)
        self.b3b = nn.Conv2d(5, 5, 3, padding=1)
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(3, 2, 1))
        self.out = nn.Conv2d(17, 8, 1)

    def forward(self, x):
        a = torch.relu(self.b3a(x))
        b3 = a + self.b3b(a)
        return self.out(torch.cat([self.b1(x), self.b2(x), b3, self.b4(x)], 1))


class Mixed(nn.Module):
    """Inception-v3's Mixed_7b: a branch that forks again and concatenates inside the outer
    concatenation; torch's exporter flattens the two Concats into one; then x.mean([2, 3])."""

    def __init__(self):
        super().__init__()
        self.b1 = nn.Conv2d(3, 2, 1)
        self.b2 = nn.Conv2d(3, 4, 1)
        self.b2a = nn.Conv2d(4, 3, (1, 3), padding=(0, 1))
        self.b2b = nn.Conv2d(4, 5, (3, 1), padding=(1, 0))
        self.pool = nn.AvgPool2d(3, 1, 1)

    def forward(self, x):
        y = torch.relu(self.b2(x))
        out = torch.cat([self.b1(x), torch.cat([self.b2a(y), self.b2b(y)], 1), self.pool(x)], 1)
        return out.mean([2, 3])


class SE(nn.Module):
    def __init__(self, c, gate):
        super().__init__()
        self.fc1 = nn.Conv2d(c, c // 2, 1)
        self.fc2 = nn.Conv2d(c // 2, c, 1)
        self.gate = gate

    def forward(self, x):
        s = nn.functional.adaptive_avg_pool2d(x, 1)
        return x * self.gate(self.fc2(torch.relu(self.fc1(s))))


class Mobile(nn.Module):
    """relu6 / hardswish / hardsigmoid / silu, SE blocks (Mul) inside residual blocks."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1, groups=8), nn.Hardswish(),
                                SE(8, nn.Hardsigmoid()), nn.Conv2d(8, 8, 1))
        self.dw2 = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1, groups=4), nn.SiLU(),
                                 SE(8, nn.Sigmoid()), nn.Conv2d(8, 8, 1), nn.LeakyReLU(0.2),
                                 nn.ELU(0.5), nn.Tanh(), nn.GELU())

    def forward(self, x):
        x = self.stem(x)
        x = x + self.dw(x)
        return x + self.dw2(x)


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.up1 = nn.ConvTranspose2d(3, 6, 3, stride=2, padding=1, output_padding=1)
        self.up2 = nn.Upsample(scale_factor=2)
        self.up3 = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.up4 = nn.Upsample(size=(50, 40), mode="bilinear")
        self.deconv = nn.ConvTranspose2d(6, 4, (2, 3), stride=(2, 1), groups=2, bias=False)
        self.pad = nn.Conv2d(4, 4, 3, padding=2, padding_mode="reflect")
        self.pool = nn.AvgPool2d(3, 2, padding=1, ceil_mode=True)
        self.zpad = nn.ZeroPad2d((1, 0, 2, 1))

    def forward(self, x):
        x = self.up4(self.up3(self.up2(self.up1(x))))
        return self.zpad(self.pool(self.pad(self.deconv(x))))


class Dense(nn.Module):
    """DenseNet's block: every layer reads the concatenation of all earlier features."""

    def __init__(self, c=4, growth=3, layers=3):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(nn.BatchNorm2d(c + k * growth), nn.ReLU(),
                          nn.Conv2d(c + k * growth, growth, 3, padding=1, bias=False))
            for k in range(layers))

    def forward(self, x):
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


# ---- torch modules, end to end ------------------------------------------------------------
@pytest.mark.parametrize("view", [False, True], ids=["flatten", "view"])
def test_plain_chain(tmp_path, view):
    model = Plain(view)
    analysis = assert_same(model, (3, 16, 16), export(model, (3, 16, 16), tmp_path / "p.onnx"))
    # torch leaves eval-mode dropout out of the graph
    assert kinds(analysis) == ["conv2d", "batchnorm", "relu", "maxpool", "conv2d", "batchnorm",
                               "relu", "flatten", "dense", "softmax"]
    layers = onnx_import.read(tmp_path / "p.onnx", "p.onnx", None)["layers"]
    assert layers[1] == {"type": "batchnorm", "eps": 1e-3, "momentum": 0.01, "name": "bn1"}
    assert layers[4] == {"type": "conv2d", "filters": 16, "kernel": 5, "stride": 2,
                         "padding": [1, 2], "dilation": [1, 2], "bias": True, "name": "conv2"}
    assert [r.name for r in analysis.rows][:4] == ["conv1", "bn1", "relu", "pool"]


def test_folded_batchnorm(tmp_path):
    """Without PRESERVE torch folds each BN into its conv: the conv gains a bias, the BN's
    γ, β and running statistics are gone; the spec counts the folded parameters."""
    model = Plain()
    trainable, buffers, macs, shapes = torch_reference(model, (3, 16, 16))
    path = export(model, (3, 16, 16), tmp_path / "f.onnx", preserve=False)
    mine = imported(path)
    # conv1 gains 8 biases; BN γ, β (2·8 + 2·16) and running stats (2·8 + 2·16) go away
    assert mine[:4] == (trainable + 8 - 2 * 8 - 2 * 16, 0, macs, shapes)
    assert "batchnorm" not in kinds(mine[4])


def test_residual(tmp_path):
    model = Residual()
    analysis = assert_same(model, (3, 16, 16), export(model, (3, 16, 16), tmp_path / "r.onnx"))
    raw = onnx_import.read(tmp_path / "r.onnx", "r.onnx", None)
    first = next(i for i in raw["layers"] if "add" in i)
    assert first["add"][1] == [] and len(first["add"][0]) == 5
    second = [i for i in raw["layers"] if "add" in i][1]
    assert [x["name"] for x in second["add"][1]] == ["down.0", "down.1"]
    assert kinds(analysis).count("add") == 2


def test_inception_concat_with_nested_fork(tmp_path):
    model = Inception()
    analysis = assert_same(model, (3, 12, 12), export(model, (3, 12, 12), tmp_path / "i.onnx"),
                           in_order=False)
    raw = onnx_import.read(tmp_path / "i.onnx", "i.onnx", None)
    concat = raw["layers"][0]["concat"]
    assert len(concat) == 4
    assert [len(b) for b in concat] == [1, 3, 3, 2]
    nested = concat[2][2]["add"]                 # a + b3b(a): the nested residual
    assert nested[0] == [] and [i["name"] for i in nested[1]] == ["b3b"]
    assert analysis.rows[-1].output_shape == (8, 12, 12)


def test_flattened_nested_concat_and_mean(tmp_path):
    model = Mixed()
    path = export(model, (3, 6, 6), tmp_path / "x.onnx")
    assert len([n for n in onnx.load(path).graph.node if n.op_type == "Concat"]) == 1
    analysis = assert_same(model, (3, 6, 6), path, in_order=False)  # torch runs b2 first
    raw = onnx_import.read(Path(path), "x.onnx", None)
    outer = raw["layers"][0]["concat"]
    assert [len(b) for b in outer] == [1, 3, 1]
    inner = outer[1][2]
    assert [[i["name"] for i in b] for b in inner["concat"]] == [["b2a"], ["b2b"]]
    assert inner["name"] == "concat_inner" and raw["layers"][0]["name"] == "concat"
    assert raw["layers"][1] == {"type": "global_avgpool", "keepdims": False, "name": "reducemean"}
    assert analysis.output_shape == (2 + 3 + 5 + 3,)


def test_mobile_activations_and_se(tmp_path):
    model = Mobile()
    analysis = assert_same(model, (3, 16, 16), export(model, (3, 16, 16), tmp_path / "m.onnx"))
    names = kinds(analysis)
    for kind in ("relu6", "hardswish", "hardsigmoid", "silu", "sigmoid", "leaky_relu", "elu",
                 "tanh", "gelu"):
        assert kind in names, kind
    assert names.count("mul") == 2 and names.count("add") == 2
    raw = onnx_import.read(tmp_path / "m.onnx", "m.onnx", None)
    leaky = next(i for i in _leaves(raw["layers"]) if i["type"] == "leaky_relu")
    assert leaky["slope"] == 0.2


def _leaves(items):
    for item in items:
        for mode in ("add", "mul", "concat"):
            if mode in item:
                for branch in item[mode]:
                    yield from _leaves(branch)
                break
        else:
            yield item


def test_old_opset_spellings(tmp_path):
    """Opset 11: Clip's bounds are inputs; hardswish spelt before opset 14's HardSwish op."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU6(), nn.Hardswish(), nn.Flatten(),
                          nn.Linear(4 * 6 * 6, 3))
    path = export(model, (3, 8, 8), tmp_path / "o.onnx", opset_version=11)
    analysis = assert_same(model, (3, 8, 8), path)
    assert kinds(analysis) == ["conv2d", "relu6", "hardswish", "flatten", "dense"]


def test_decoder_upsampling_and_pads(tmp_path):
    model = Decoder()
    analysis = assert_same(model, (3, 5, 4), export(model, (3, 5, 4), tmp_path / "d.onnx"))
    layers = onnx_import.read(tmp_path / "d.onnx", "d.onnx", None)["layers"]
    by_name = {i["name"]: i for i in layers}
    assert by_name["up1"] == {"type": "conv_transpose2d", "filters": 6, "kernel": 3, "stride": 2,
                              "padding": 1, "output_padding": 1, "bias": True, "name": "up1"}
    assert by_name["up2"] == {"type": "upsample", "mode": "nearest", "scale": 2, "name": "up2"}
    assert by_name["up3"]["align_corners"] is True and by_name["up3"]["scale"] == 2
    assert by_name["up4"]["size"] == [50, 40]
    assert by_name["deconv"]["groups"] == 2 and by_name["deconv"]["filters"] == 4
    assert by_name["pad"]["padding_mode"] == "reflect" and by_name["pad"]["padding"] == 2
    assert by_name["pool"] == {"type": "avgpool", "kernel": 3, "stride": 2, "padding": 1,
                               "ceil_mode": True, "name": "pool"}
    assert by_name["zpad"]["padding"] == [2, 1, 1, 0]      # (left 1, right 0, top 2, bottom 1)
    # 5×4 → deconv 10×8 → ×2 → ×2 → 50×40 → (49·2 + 2)×(39 + 3) = 100×42 → reflect conv
    # 102×44 → avgpool ceil 52×23 → zero pad (top 2, bottom 1, left 1) 55×24
    assert analysis.output_shape == (4, 55, 24)


def test_dense_block_concat_chain(tmp_path):
    model = Dense()
    analysis = assert_same(model, (4, 6, 6), export(model, (4, 6, 6), tmp_path / "n.onnx"))
    assert kinds(analysis).count("concat") == 3
    assert analysis.output_shape == (13, 6, 6)


def test_resnet18_torchvision(tmp_path):
    from torchvision_models import model as tv
    net = tv("resnet", "resnet18")
    path = export(net, (3, 64, 64), tmp_path / "resnet18.onnx")
    analysis = assert_same(net, (3, 64, 64), path)
    # torchvision's own counts (README, reference numbers): 11,689,512 trainable
    assert analysis.totals.trainable_params == 11_689_512
    names = [r.name for r in analysis.rows]
    assert "layer2.0.downsample.0" in names and "layer1.0.add" in names and names[-1] == "fc"
    raw = onnx_import.read(Path(path), "resnet18.onnx", None)
    assert raw["source"] == "imported from resnet18.onnx (ONNX opset 17, producer pytorch " \
        f"{torch.__version__.split('+')[0]})"
    assert raw["input"] == [3, 64, 64]


# ---- hand-built graphs ---------------------------------------------------------------------
def graph_file(tmp_path, nodes, inits=(), shape=(1, 3, 8, 8), out="y", name="g.onnx",
               opset=17, inputs=None):
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)]
    graph = helper.make_graph(nodes, "hand", inputs,
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
                              list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return str(path)


def weight(name, dims):
    return helper.make_tensor(name, TensorProto.FLOAT, dims, [0.0] * int(__import__("math").prod(dims)))


def test_lrn_node(tmp_path):
    """ONNX's LRN is the average form (alpha/size): PyTorch's nn.LocalResponseNorm(3, 2e-4)."""
    path = graph_file(tmp_path, [helper.make_node("LRN", ["x"], ["y"], size=3, alpha=2e-4,
                                                  beta=0.5, bias=2.0, name="norm1")])
    net = load(path)
    spec = net.root.children[0].spec
    assert (spec.kind, spec.size, spec.alpha, spec.beta, spec.k, spec.form) == \
        ("lrn", 3, 2e-4, 0.5, 2.0, "average")
    assert net.root.children[0].path == ("norm1",)


def test_dropout_and_identity_nodes(tmp_path):
    ratio = helper.make_tensor("ratio", TensorProto.FLOAT, [], [0.3])
    nodes = [helper.make_node("Identity", ["x"], ["a"]),
             helper.make_node("Dropout", ["a", "ratio"], ["y"], name="/drop/Dropout")]
    layers = onnx_import.read(Path(graph_file(tmp_path, nodes, [ratio])), "g.onnx", None)["layers"]
    assert layers == [{"type": "dropout", "rate": 0.3, "name": "drop"}]


def test_matmul_bias_gemm_and_global_max(tmp_path):
    """GlobalMaxPool → adaptive_maxpool 1; Gemm without transB (weight K×N); MatMul + Add."""
    nodes = [helper.make_node("GlobalMaxPool", ["x"], ["p"], name="/gmp/GlobalMaxPool"),
             helper.make_node("Flatten", ["p"], ["f"], name="/Flatten"),
             helper.make_node("Gemm", ["f", "w1"], ["g"], name="/fc1/Gemm"),
             helper.make_node("MatMul", ["g", "w2"], ["m"], name="/fc2/MatMul"),
             helper.make_node("Add", ["m", "b2"], ["y"], name="/fc2/Add")]
    path = graph_file(tmp_path, nodes, [weight("w1", [3, 7]), weight("w2", [7, 4]),
                                        weight("b2", [4])])
    layers = onnx_import.read(Path(path), "g.onnx", None)["layers"]
    assert layers == [{"type": "adaptive_maxpool", "output": 1, "name": "gmp"},
                      {"type": "flatten", "name": "flatten"},
                      {"type": "dense", "units": 7, "bias": False, "name": "fc1"},
                      {"type": "dense", "units": 4, "bias": True, "name": "fc2"}]
    assert analyze(load(path)).totals.trainable_params == 3 * 7 + 7 * 4 + 4


@pytest.mark.parametrize("node, why", [
    (helper.make_node("HardSigmoid", ["x"], ["y"], alpha=0.2), "HardSigmoid with alpha ≠ 1/6"),
    (helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
     "AveragePool with pads and count_include_pad=0"),
    (helper.make_node("Resize", ["x", "", "s"], ["y"], mode="nearest"),
     "Resize nearest with half_pixel"),
    (helper.make_node("Softmax", ["x"], ["y"], axis=-1), "Softmax over axis -1 of a 4-D"),
    (helper.make_node("Concat", ["x", "x"], ["y"], axis=2), "Concat along axis 2"),
], ids=["hardsigmoid", "avgpool", "resize", "softmax", "concat"])
def test_attributes_archcalc_cannot_express(tmp_path, node, why):
    scales = helper.make_tensor("s", TensorProto.FLOAT, [4], [1, 1, 2, 2])
    with pytest.raises(ArchcalcError, match=f"1 ONNX node archcalc cannot express: {why}"):
        load(graph_file(tmp_path, [node], [scales]))


def test_clip_attributes_before_opset_11(tmp_path):
    nodes = [helper.make_node("Clip", ["x"], ["a"], min=0.0, max=6.0, name="c6"),
             helper.make_node("Clip", ["a"], ["y"], min=0.0, name="c0")]
    rows = analyze(load(graph_file(tmp_path, nodes, opset=10))).rows
    assert [(r.name, r.type) for r in rows] == [("c6", "relu6"), ("c0", "relu")]


def test_node_names_sanitised_and_unique(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="onnx::Relu_12"),
             helper.make_node("Relu", ["a"], ["b"], name="onnx::Relu_12"),
             helper.make_node("Sigmoid", ["b"], ["y"], name="")]
    rows = analyze(load(graph_file(tmp_path, nodes))).rows
    assert [r.name for r in rows] == ["onnx_Relu_12", "onnx_Relu_12_1", "sigmoid"]


def test_unsupported_nodes_listed_at_most_20(tmp_path):
    nodes, prev = [], "x"
    for k in range(23):
        nodes.append(helper.make_node("Cos", [prev], [f"t{k}"], name=f"cos{k}"))
        prev = f"t{k}"
    nodes.append(helper.make_node("Relu", [prev], ["y"]))
    with pytest.raises(ArchcalcError) as err:
        load(graph_file(tmp_path, nodes))
    lines = err.value.render().splitlines()
    assert lines[0].startswith("error: ")
    assert "23 ONNX nodes archcalc cannot express, one a line below" in lines[0]
    assert lines[1:21] == [f"  Cos (node 'cos{k}', #{k})" for k in range(20)]
    assert lines[21:] == ["  ... and 3 more"]
    assert onnx_import.unsupported_report([]) == []


def test_not_series_parallel(tmp_path):
    """a feeds both the Add and, after it, the Mul: no single fork/join structure."""
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="r"),
             helper.make_node("Sigmoid", ["a"], ["b"], name="s"),
             helper.make_node("Add", ["a", "b"], ["c"], name="add"),
             helper.make_node("Tanh", ["c"], ["d"], name="t"),
             helper.make_node("Mul", ["d", "a"], ["y"], name="mul")]
    with pytest.raises(SpecError, match="not a chain of sequences and branches at node 'add' "
                       r"\(Add, #2\): its branch does not end at an input of 'mul'"):
        load(graph_file(tmp_path, nodes))


def test_dynamic_sizes_need_input(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3])]
    path = graph_file(tmp_path, nodes, [weight("w", [4, 3, 3, 3])], shape=("N", 3, "H", "W"))
    with pytest.raises(SpecError, match=r"dynamic or unknown sizes \(3×\?×\?\).*--input"):
        load(path)
    assert analyze(load(path, (3, 10, 9))).output_shape == (4, 8, 7)
    with pytest.raises(SpecError, match="--input gives 1 channels but the model takes 3"):
        load(path, (1, 10, 9))


def test_two_inputs(tmp_path):
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, (1, 3, 8, 8)) for n in "xz"]
    path = graph_file(tmp_path, [helper.make_node("Add", ["x", "z"], ["y"])], inputs=inputs)
    with pytest.raises(SpecError, match=r"the graph has 2 inputs \('x', 'z'\)"):
        load(path)


def test_opset_and_ir_outside_range(tmp_path):
    path = graph_file(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], opset=5)
    with pytest.raises(SpecError, match="ONNX opset 5 is outside what archcalc reads"):
        load(path)
    model = onnx.load(graph_file(tmp_path, [helper.make_node("Relu", ["x"], ["y"])]))
    model.ir_version = 99
    (tmp_path / "ir.onnx").write_bytes(model.SerializeToString())
    with pytest.raises(SpecError, match="IR version 99 is outside"):
        load(str(tmp_path / "ir.onnx"))


def test_truncated_and_not_onnx(tmp_path):
    good = Path(graph_file(tmp_path, [helper.make_node("Conv", ["x", "w"], ["y"],
                                                       kernel_shape=[3, 3])],
                           [weight("w", [4, 3, 3, 3])]))
    (tmp_path / "cut.onnx").write_bytes(good.read_bytes()[:-40])
    (tmp_path / "text.onnx").write_bytes(b"name: net\ninput: [3, 8, 8]\n")
    (tmp_path / "empty.onnx").write_bytes(b"")
    for name, pattern in (("cut.onnx", "truncated or corrupt|not an ONNX model"),
                          ("text.onnx", "truncated or corrupt|not an ONNX model"),
                          ("empty.onnx", "empty")):
        with pytest.raises(SpecError, match=pattern) as err:
            load(str(tmp_path / name))
        assert err.value.file == str(tmp_path / name)
        assert "\n" not in err.value.render()


def test_size_refused_before_parsing(tmp_path, monkeypatch):
    path = graph_file(tmp_path, [helper.make_node("Relu", ["x"], ["y"])])
    monkeypatch.setenv("ARCHCALC_MAX_MODEL_BYTES", "10")
    with pytest.raises(SpecError, match="an imported model file may have at most 10 bytes"):
        load(path)


def test_missing_onnx_package(tmp_path, monkeypatch):
    path = graph_file(tmp_path, [helper.make_node("Relu", ["x"], ["y"])])
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ArchcalcError) as err:
        load(path)
    assert err.value.render() == (f"error: {path}: reading .onnx files needs the onnx package "
                                  "(fix: pip install 'archcalc[onnx]')")


def test_torchs_default_graph_name_gives_way_to_the_file_name(tmp_path):
    """torch calls every exported graph 'main_graph': the spec is named after the file."""
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU())
    path = export(model, (1, 8, 8), tmp_path / "edge_detector.onnx")
    assert onnx.load(path).graph.name == "main_graph"
    assert load(path).name == "edge_detector"


# ---- sequences (issue 13): nn.RNN / nn.LSTM / nn.GRU as torch.onnx writes them -------------------
class _LastStep(nn.Module):
    """out[:, -1] of the sequence: the last step (one direction), then a classifier."""

    def __init__(self, rnn, classes=3):
        super().__init__()
        self.rnn, self.fc = rnn, nn.Linear(rnn.hidden_size, classes)

    def forward(self, x):
        return self.fc(self.rnn(x)[0][:, -1])


class _HiddenState(nn.Module):
    """h_n[-1]: the last layer's final state (one direction), then a classifier."""

    def __init__(self, rnn, classes=3):
        super().__init__()
        self.rnn, self.fc = rnn, nn.Linear(rnn.hidden_size, classes)

    def forward(self, x):
        h = self.rnn(x)[1]
        return self.fc((h[0] if isinstance(h, tuple) else h)[-1])


class _EveryStep(nn.Module):
    """Every step's output (both directions), a Linear on each: logits per step."""

    def __init__(self, rnn, embed=None, classes=3):
        super().__init__()
        self.embed, self.rnn = embed, rnn
        self.fc = nn.Linear(rnn.hidden_size * (2 if rnn.bidirectional else 1), classes)

    def forward(self, x):
        return self.fc(self.rnn(self.embed(x) if self.embed is not None else x)[0])


SEQUENCE_MODULES = {
    "lstm_last_step": lambda: _LastStep(nn.LSTM(4, 5, batch_first=True)),
    "gru_h_n": lambda: _HiddenState(nn.GRU(4, 5, batch_first=True)),
    "rnn_h_n": lambda: _HiddenState(nn.RNN(4, 5, batch_first=True, nonlinearity="relu")),
    "lstm_two_layers_last_step": lambda: _LastStep(nn.LSTM(4, 5, num_layers=2,
                                                           batch_first=True)),
    "lstm_bidirectional_every_step": lambda: _EveryStep(
        nn.LSTM(4, 3, batch_first=True, bidirectional=True)),
    "gru_bidirectional_no_bias_every_step": lambda: _EveryStep(
        nn.GRU(4, 3, batch_first=True, bidirectional=True, bias=False)),
    "rnn_bidirectional_every_step": lambda: _EveryStep(
        nn.RNN(4, 3, batch_first=True, bidirectional=True)),
    "embedding_gru_every_step": lambda: _EveryStep(nn.GRU(6, 4, batch_first=True),
                                                   embed=nn.Embedding(11, 6)),
}


@pytest.mark.parametrize("name", list(SEQUENCE_MODULES))
def test_torch_recurrent_modules(name, tmp_path):
    """torch.onnx's RNN/LSTM/GRU with the Transpose / Squeeze / Reshape / Gather nodes it
    writes around them: torch's parameter count, FlopCounterMode's FLOPs / 2 as MACs, and
    onnxruntime's logits on the file computed by the executor on the imported weights."""
    ort = pytest.importorskip("onnxruntime")
    from torch.utils.flop_counter import FlopCounterMode

    from archcalc.importers import imported_weights, load_with_weights
    from archcalc.nn.network import build
    torch.manual_seed(0)
    model = SEQUENCE_MODULES[name]().eval()
    steps, n = 6, 2
    x = torch.randint(0, 11, (n, steps)) if "embedding" in name else torch.randn(n, steps, 4)
    path = str(tmp_path / f"{name}.onnx")
    torch.onnx.export(model, (x,), path, dynamo=False, input_names=["x"],
                      dynamic_axes={"x": {0: "N"}})
    analysis = analyze(load(path))
    assert analysis.totals.params == sum(p.numel() for p in model.parameters())
    with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False):
        with FlopCounterMode(display=False) as flops:
            model(x)
    assert analysis.totals.macs * 2 * n == flops.get_total_flops()

    network, table = load_with_weights(path, None)
    executor = build(network)
    executor.load_state_dict(imported_weights(network, table, path), strict=True)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    want = session.run(None, {"x": x.numpy()})[0]
    got = executor.forward(x.numpy().astype("float32"))
    assert got.shape == want.shape
    assert abs(got - want).max() < 1e-4 * abs(want).max()


def test_bidirectional_last_step_of_the_sequence_is_refused_by_name(tmp_path):
    """out[:, -1] of a bidirectional layer is not its h_n (the backward half has seen one
    step): no archcalc layer computes it; the error names the Gather and says why."""
    model = _EveryStep(nn.LSTM(4, 3, batch_first=True, bidirectional=True))
    model.forward = lambda x: model.fc(model.rnn(x)[0][:, -1])
    path = str(tmp_path / "bi_last.onnx")
    torch.onnx.export(model, (torch.randn(1, 5, 4),), path, dynamo=False)
    with pytest.raises(ArchcalcError, match=r"1 ONNX node .*a bidirectional one's is h_n, "
                                            r"not out\[:, -1\]\) \(node '/Gather'"):
        load(path)


# ---- review 13: a refused RNN/LSTM/GRU is named with its reason, not its layout nodes -------
def _lstm_file(tmp_path, *, layout=0, tail="Reshape", w_features=3, hidden=4, **attrs):
    """input (N, 5, 3) → [Transpose (T, N, F) | Identity] → LSTM (rec, node #1) → Y_h read
    back batch-first by Transpose + Reshape, Reshape (layout 1) or Squeeze."""
    import numpy as np
    from onnx import numpy_helper as nh
    rng = np.random.default_rng(0)
    inits = [nh.from_array(rng.standard_normal((1, 16, w_features)).astype("float32"), "W"),
             nh.from_array(rng.standard_normal((1, 16, 4)).astype("float32"), "R"),
             nh.from_array(np.array([0, -1], "int64"), "shp"),
             nh.from_array(np.array([0], "int64"), "ax")]
    if layout:
        attrs["layout"] = 1
    first = helper.make_node("Identity" if layout else "Transpose", ["x"], ["xt"],
                             **({} if layout else {"perm": [1, 0, 2]}))
    rec = helper.make_node("LSTM", ["xt", "W", "R"], ["Y", "Y_h"], name="rec",
                           hidden_size=hidden, **attrs)
    if tail == "Squeeze":
        after = [helper.make_node("Squeeze", ["Y_h", "ax"], ["y"], name="sq")]
    elif layout:
        after = [helper.make_node("Reshape", ["Y_h", "shp"], ["y"], name="flat")]
    else:
        after = [helper.make_node("Transpose", ["Y_h"], ["yt"], name="yt", perm=[1, 0, 2]),
                 helper.make_node("Reshape", ["yt", "shp"], ["y"], name="flat")]
    return graph_file(tmp_path, [first, rec, *after], inits, shape=("N", 5, 3))


@pytest.mark.parametrize("layout, tail", [(0, "Reshape"), (1, "Reshape"), (0, "Squeeze")])
@pytest.mark.parametrize("attrs, why", [
    ({"direction": "reverse"}, r"LSTM direction reverse"),
    ({"clip": 0.5}, r"LSTM with clip"),
    ({"input_forget": 1}, r"LSTM with input_forget"),
    ({"activations": ["Relu", "Tanh", "Tanh"]}, r"LSTM with activations \['Relu'"),
    ({"hidden": 5}, r"LSTM whose W .* disagree with hidden_size 5"),
])
def test_refused_recurrent_node_named_with_its_reason(tmp_path, layout, tail, attrs, why):
    """The error names node 'rec' (#1) and why, not the Transpose / Squeeze / Reshape it
    would have fused (nor 'its output leads nowhere' with layout 1); --partial's first
    unsupported node is the LSTM too."""
    path = _lstm_file(tmp_path, layout=layout, tail=tail, **attrs)
    with pytest.raises(ArchcalcError, match=rf"1 ONNX node archcalc cannot express: {why}.*"
                                            r"\(node 'rec', #1\)"):
        load(path)
    model = onnx.load(path)
    with pytest.raises(ArchcalcError, match=r"first unsupported node, node 'rec' \(LSTM, #1\)"):
        onnx_import.convert(model, path, None, partial=True)


def test_the_same_lstm_without_the_refused_attribute_imports(tmp_path):
    """The refusals above come from the attribute: the same graph without it reads as one
    lstm layer with torch's parameter count 4·H·(F + H) (no B: no biases)."""
    for layout, tail in [(0, "Reshape"), (1, "Reshape"), (0, "Squeeze")]:
        analysis = analyze(load(_lstm_file(tmp_path, layout=layout, tail=tail)))
        assert kinds(analysis) == ["lstm"]
        assert analysis.rows[0].trainable_params == sum(
            p.numel() for p in torch.nn.LSTM(3, 4, bias=False).parameters())


def test_lstm_weight_reading_other_features_than_its_input_is_damaged(tmp_path):
    """W (1, 16, 4) over an input of 3 features: onnxruntime cannot run the file, and the
    importer refuses it (as Conv/Gemm weights that disagree with their input) rather than
    count 4·H·(F + H) for F = 3 while the file holds the weights of F = 4."""
    ort = pytest.importorskip("onnxruntime")
    import numpy as np
    path = _lstm_file(tmp_path, w_features=4)
    with pytest.raises(Exception):
        ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(
            None, {"x": np.zeros((1, 5, 3), "float32")})
    with pytest.raises(ArchcalcError, match=r"LSTM whose W \(1×16×4\) reads 4 input features "
                                            r"but its input has 3 .*damaged"):
        load(path)


@pytest.mark.parametrize("attrs, damaged", [({"hidden": 5}, True), ({"direction": "reverse"},
                                                                   False)])
def test_a_refused_recurrent_node_gets_the_fix_of_its_kind(tmp_path, attrs, damaged):
    """W and R that contradict hidden_size are damage (export again); a reverse direction is
    a form archcalc does not map (the list of what it maps)."""
    with pytest.raises(ArchcalcError) as info:
        load(_lstm_file(tmp_path, **attrs))
    fix = info.value.fix
    assert fix.startswith("the file's attributes contradict its weights") == damaged
    assert fix.startswith("archcalc maps Conv") == (not damaged)
