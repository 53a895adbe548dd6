"""The backward MACs of calc/backward.py against PyTorch: autograd decides which gradients a
training step computes, FlopCounterMode counts them (torch 2.13, torch/utils/flop_counter.py).

FlopCounterMode's rules, read in its source:
- conv_flop_count: 2 · prod(spatial positions) · prod(kernel) · batch · w_shape[0] · w_shape[1],
  the positions being the output's (the input's for a transposed convolution), bias ignored.
  With a weight (C_out, C_in/groups, K_h, K_w) that is 2 · our forward MACs · batch.
- conv_backward_flop (aten.convolution_backward): output_mask[0] (autograd asks for the input's
  gradient) adds conv_flop_count(grad_out, w, grad_input, not transposed): 2 · our dX;
  output_mask[1] (the weight's) adds conv_flop_count(t(x), t(grad_out), t(grad_weight)), t
  swapping dims 0 and 1: its "batch" is x's channel count C_in — all of them, not
  C_in/groups — so a grouped layer's dW is counted `groups` times (a depthwise layer's C
  times; DESIGN.md). We keep the exact count and test the difference as that formula.
- mm_flop / addmm_flop (a dense layer, forward and its two backward matmuls): 2·m·n·k.
- Nothing else a CNN runs is counted (batch norm, pooling, activations, adds, concat, the
  bias gradient's sum).
So FlopCounterMode's backward FLOPs / 2 / batch = Σ dX + Σ groups·dW, per image.

Per layer, FlopCounterMode's module attribution is not used: in backward it misattributes
across a residual add (torchvision's ResNet-18 layer2.0.downsample.0 is given conv2's backward
too). Instead a dispatch mode records every convolution_backward and matmul autograd runs,
splits each into dX and dW with FlopCounterMode's own formulas (its output_mask says which
gradients autograd asked for), and names its layer by the weight's shape.

The torchvision models run on the meta device (shapes only: PyTorch's own autograd graph and
counts without arrays, ~4 s for all six); the small specs per kind run on real CPU arrays.
ARCHCALC_SLOW_TESTS=1 adds the issue's ResNet-50 figure on real arrays (batch 2, ~10 s).
"""

from __future__ import annotations

import os

import pytest

from archcalc.calc import analyze
from archcalc.calc.backward import backward_costs
from archcalc.spec import load
from archcalc.spec.load import locate, loads

torch = pytest.importorskip("torch")
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils.flop_counter import (FlopCounterMode, conv_backward_flop,  # noqa: E402
                                      mm_flop)

from archcalc.spec.layers import pair  # noqa: E402

from torchvision_models import model  # noqa: E402

SLOW = os.environ.get("ARCHCALC_SLOW_TESTS") == "1"
WEIGHTED = (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)
aten = torch.ops.aten


# ---- measuring -------------------------------------------------------------------------------
def measure(net, x) -> tuple[dict[str, tuple[int, int]], list[tuple]]:
    """One training step on x: {module name: (forward FLOPs, backward FLOPs)} as
    FlopCounterMode counts them, with 'Global' for the whole network (names are torch's
    fully qualified names without the root: 'layer1.0.conv1'), and the sorted BackwardCalls
    of its backward in MACs per image."""
    with FlopCounterMode(display=False) as mode:
        out = net(x)
        forward = _by_module(mode)
        with BackwardCalls(x.shape[0]) as recorder:
            out.sum().backward()  # d(sum)/d(out) = 1: an expand, no FLOPs
        total = _by_module(mode)
    counts = {name: (forward.get(name, 0), flops - forward.get(name, 0))
              for name, flops in total.items()}
    calls = sorted((part, w, shape, per_image_macs(flops, x.shape[0]))
                   for part, w, shape, flops in recorder.calls)
    return counts, calls


def _by_module(mode) -> dict[str, int]:
    counts = {}
    for name, ops in mode.get_flop_counts().items():
        key = name if name == "Global" else name.partition(".")[2]
        if key:  # the root module itself ('ResNet') is the same as Global
            counts[key] = sum(ops.values())
    return counts


class BackwardCalls(TorchDispatchMode):
    """Records the gradient operators autograd runs, as (part, weight shape, input C×H×W or
    features, FLOPs): part 'dX' or 'dW'. A convolution_backward is split by its output_mask
    through FlopCounterMode's conv_backward_flop; a dense layer's backward is two mm (torch's
    addmm/mm derivatives: dX = grad·W, (B, out)·(out, in); dW = gradᵀ·x, (out, B)·(B, in)),
    told apart by where the batch dimension is."""

    def __init__(self, batch: int) -> None:
        super().__init__()
        self.batch = batch
        self.calls: list[tuple] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is aten.convolution_backward.default:
            grad, x, w, *rest = args
            mask = rest[-1]
            for part, alone in (("dX", [mask[0], False, False]), ("dW", [False, mask[1], False])):
                if any(alone):
                    flops = conv_backward_flop(grad, x, w, *rest[:-1], alone, out_val=out)
                    self.calls.append((part, tuple(w.shape), tuple(x.shape[1:]), flops))
        elif func is aten.mm.default:
            a, b = args
            if a.shape[0] == self.batch:  # dX (B, out)·(out, in): the weight is b
                self.calls.append(("dX", tuple(b.shape), (b.shape[1],), mm_flop(a, b)))
            else:  # dW (out, B)·(B, in): the weight's own shape
                self.calls.append(("dW", (a.shape[0], b.shape[1]), (b.shape[1],),
                                   mm_flop(a, b)))
        return out


def our_calls(analysis) -> list[tuple]:
    """The same records from our rows: dX, and dW as FlopCounterMode counts it (× groups)."""
    leaves = {analysis.network.display(leaf.path): leaf for leaf in analysis.network.leaves()}
    rows = {row.name: row for row in analysis.rows}
    calls = []
    for cost in backward_costs(analysis):
        leaf, row = leaves.get(cost.name), rows[cost.name]
        if leaf is None or leaf.kind not in ("conv2d", "conv_transpose2d", "dense"):
            continue
        groups = getattr(leaf.spec, "groups", 1)
        if leaf.kind == "dense":
            weight = (row.output_shape[0], row.input_shape[0])
        else:
            kh, kw = pair(leaf.spec.kernel)
            c_in, c_out = row.input_shape[0], row.output_shape[0]
            weight = ((c_out, c_in // groups, kh, kw) if leaf.kind == "conv2d"
                      else (c_in, c_out // groups, kh, kw))  # PyTorch's layouts
        if cost.dx_macs:
            calls.append(("dX", weight, row.input_shape, cost.dx_macs))
        if cost.dw_macs:
            calls.append(("dW", weight, row.input_shape, groups * cost.dw_macs))
    return sorted(calls)


def groups_of(analysis) -> dict[str, int]:
    """Row name → the layer's groups (1 for a layer without)."""
    groups = {analysis.network.display(leaf.path): getattr(leaf.spec, "groups", 1)
              for leaf in analysis.network.leaves()}
    return {row.name: groups.get(row.name, 1) for row in analysis.rows}


def flop_counter_view(analysis) -> dict[str, int]:
    """Our rows as FlopCounterMode counts their backward, in MACs per image: dX + groups·dW
    (its conv_backward_flop counts a grouped weight gradient over all C_in channels)."""
    groups = groups_of(analysis)
    return {c.name: c.dx_macs + groups[c.name] * c.dw_macs for c in backward_costs(analysis)}


def per_image_macs(flops: int, batch: int) -> int:
    """FLOPs of a batch → MACs per image, refusing a remainder (an exact count must divide)."""
    macs, rest = divmod(flops, 2 * batch)
    assert rest == 0, (flops, batch)
    return macs


# ---- torchvision models ----------------------------------------------------------------------
# spec name → (torchvision module, builder, keyword arguments)
TORCHVISION = {
    "resnet18": ("resnet", "resnet18", {}),
    "resnet50": ("resnet", "resnet50", {}),
    "vgg16": ("vgg", "vgg16", {}),
    # Without the auxiliary classifiers (their forward runs in training mode; the spec has none).
    "googlenet": ("googlenet", "googlenet", {"aux_logits": False, "init_weights": False}),
    "densenet121": ("densenet", "densenet121", {}),
    "mobilenet_v2": ("mobilenetv2", "mobilenet_v2", {}),
}
BATCH = 2  # the issue's batch; per image = / 2 as well


def torchvision_spec(name: str):
    """The bundled spec of the same network. GoogLeNet: torchvision's "5x5" branch is a 3×3
    conv (torchvision/models/googlenet.py, Inception.branch3: "kernel_size=3 instead of
    kernel_size=5 is a known bug", pytorch/vision#906); the bundled spec is the paper's, so
    the 5×5 layers are read as torchvision builds them."""
    if name != "googlenet":
        return load(name)
    text = locate(name).read_text(encoding="utf-8")
    paper = "{conv: {name: 5x5, filters: c5, kernel: 5, padding: 2}}"
    assert text.count(paper) == 1
    return loads(text.replace(paper, "{conv: {name: 5x5, filters: c5, kernel: 3, padding: 1}}"),
                 file="googlenet (torchvision form)")


@pytest.fixture(scope="module")
def measured():
    """name → measure(torchvision model in training mode, a batch of 2 on the meta device),
    each model built and run once for the whole module."""
    cache: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in cache:
            module, builder, kwargs = TORCHVISION[name]
            with torch.device("meta"):
                net = model(module, builder, **kwargs).train()
            cache[name] = measure(net, torch.zeros((BATCH, 3, 224, 224), device="meta"))
        return cache[name]
    return get


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_backward_total_equals_flop_counter(measured, name):
    analysis = analyze(torchvision_spec(name))
    forward, backward = measured(name)[0]["Global"]
    # The same network: FlopCounterMode's forward is 2·our MACs per image.
    assert per_image_macs(forward, BATCH) == analysis.totals.macs
    costs = backward_costs(analysis)
    exact = sum(c.dx_macs + c.dw_macs for c in costs)
    # FlopCounterMode counts a grouped convolution's dW `groups` times: (groups − 1)·dW more.
    groups = groups_of(analysis)
    overcount = sum((groups[c.name] - 1) * c.dw_macs for c in costs)
    assert per_image_macs(backward, BATCH) == exact + overcount
    # Only MobileNet-v2 has grouped (depthwise) convolutions: the others' totals are equal.
    assert (overcount == 0) == (name != "mobilenet_v2")


def test_mobilenet_v2_depthwise_overcount_is_channels_times_dw(measured):
    """DESIGN.md: depthwise layers' dW is overcounted by their channel count. The exact total
    differs from FlopCounterMode's by Σ over depthwise rows of (C − 1)·dW, C = groups."""
    analysis = analyze(load("mobilenet_v2"))
    leaves = {analysis.network.display(leaf.path): leaf for leaf in analysis.network.leaves()}
    rows = {row.name: row for row in analysis.rows}
    costs = backward_costs(analysis)
    depthwise = [c for c in costs if c.name in leaves and leaves[c.name].kind == "conv2d"
                 and leaves[c.name].spec.groups > 1]
    assert len(depthwise) == 17  # one per inverted residual block
    for c in depthwise:  # depthwise: groups = input channels = filters
        assert leaves[c.name].spec.groups == rows[c.name].input_shape[0] == \
            rows[c.name].output_shape[0]
    overcount = sum((leaves[c.name].spec.groups - 1) * c.dw_macs for c in depthwise)
    exact = sum(c.dx_macs + c.dw_macs for c in costs)
    assert per_image_macs(measured("mobilenet_v2")[0]["Global"][1], BATCH) - exact == overcount
    assert overcount > exact  # the overcount is larger than the whole exact backward


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_backward_per_layer_equals_autograd(measured, name):
    """Every gradient autograd computes is one of ours with the same MACs, and no other: the
    first conv has a dW and no dX, every later weighted layer both."""
    analysis = analyze(torchvision_spec(name))
    theirs = measured(name)[1]
    assert theirs == our_calls(analysis)
    assert sum(1 for part, *_ in theirs if part == "dX") == \
        sum(1 for part, *_ in theirs if part == "dW") - 1


def test_resnet50_training_step_is_the_issue_figure(measured):
    """Issue 12: forward + backward on a batch of 2 in training mode measures 48,598,155,264
    FLOPs (FlopCounterMode, PyTorch 2.13)."""
    forward, backward = measured("resnet50")[0]["Global"]
    assert forward + backward == 48_598_155_264
    analysis = analyze(load("resnet50"), batch=2)
    costs = backward_costs(analysis)
    step = analysis.totals.macs + sum(c.dx_macs + c.dw_macs for c in costs)
    assert 2 * step * analysis.totals.batch == forward + backward


@pytest.mark.skipif(not SLOW, reason="ResNet-50 on real arrays: set ARCHCALC_SLOW_TESTS=1")
def test_resnet50_issue_figure_on_real_arrays():
    """The same figure with real tensors on the CPU (the meta device counts shapes only)."""
    torch.manual_seed(0)
    net = model("resnet", "resnet50").train()
    counts, _ = measure(net, torch.randn(2, 3, 224, 224))
    assert sum(counts["Global"]) == 48_598_155_264


# ---- small specs, one per kind, on real arrays -----------------------------------------------
class Net(torch.nn.Module):
    """Named modules at the top level (so their names are the spec's layer names) and a
    forward function that wires them as the spec does."""

    def __init__(self, forward, **modules) -> None:
        super().__init__()
        for name, module in modules.items():
            self.add_module(name, module)
        self._forward = forward

    def forward(self, x):
        return self._forward(self, x)


def _frozen(module):
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module


nn, F = torch.nn, torch.nn.functional
HEAD = "name: t\ninput: {input}\nlayers:\n"
SMALL = {
    # Grouped, dilated, strided, padded convolutions; a depthwise one; a 1×1 without bias.
    "conv": (HEAD.format(input="[4, 11, 13]") + """
  - {conv: {name: c1, filters: 6, kernel: [3, 2], stride: [2, 1], padding: [1, 2], dilation: [2, 1], groups: 2}}
  - relu
  - {conv: {name: c2, filters: 9, kernel: 3, stride: 2, padding: 1, groups: 3, bias: false}}
  - {conv: {name: dw, filters: 9, kernel: 3, padding: 1, dilation: 2, groups: 9}}
  - {conv: {name: c3, filters: 5, kernel: 1, bias: false}}
""", lambda: Net(lambda m, x: m.c3(m.dw(m.c2(F.relu(m.c1(x))))),
                 c1=nn.Conv2d(4, 6, (3, 2), (2, 1), (1, 2), (2, 1), groups=2),
                 c2=nn.Conv2d(6, 9, 3, 2, 1, groups=3, bias=False),
                 dw=nn.Conv2d(9, 9, 3, 1, 1, 2, groups=9),
                 c3=nn.Conv2d(9, 5, 1, bias=False))),
    # Transposed convolutions, the first of them first in the network, grouped and dilated.
    "conv_transpose": (HEAD.format(input="[6, 5, 7]") + """
  - {conv_transpose2d: {name: up1, filters: 4, kernel: 3, stride: 2, padding: 1, output_padding: 1, groups: 2}}
  - relu
  - {conv_transpose2d: {name: up2, filters: 6, kernel: [2, 3], stride: [2, 3], padding: [0, 1], output_padding: [1, 0], dilation: 2, groups: 2}}
  - {conv: {name: c, filters: 3, kernel: 3}}
""", lambda: Net(lambda m, x: m.c(m.up2(F.relu(m.up1(x)))),
                 up1=nn.ConvTranspose2d(6, 4, 3, 2, 1, output_padding=1, groups=2),
                 up2=nn.ConvTranspose2d(4, 6, (2, 3), (2, 3), (0, 1), output_padding=(1, 0),
                                        groups=2, dilation=2),
                 c=nn.Conv2d(6, 3, 3))),
    # Dense layers on a flat input: the first has no dX.
    "dense": (HEAD.format(input="[20]") + """
  - {dense: {name: fc1, units: 7}}
  - relu
  - {dense: {name: fc2, units: 3, bias: false}}
""", lambda: Net(lambda m, x: m.fc2(F.relu(m.fc1(x))),
                 fc1=nn.Linear(20, 7), fc2=nn.Linear(7, 3, bias=False))),
    # The first weighted layers are inside branches (a and b, after a pool); the input is also
    # handed on unchanged; after the concat everything needs dX, the SE gate's conv too.
    "branches": (HEAD.format(input="[3, 12, 12]") + """
  - concat:
      - [{conv: {name: a, filters: 4, kernel: 3, padding: 1}}]
      - [{maxpool: {name: p, kernel: 3, stride: 1, padding: 1}}, {conv: {name: b, filters: 2, kernel: 1}}]
      - []
  - {conv: {name: c, filters: 5, kernel: 3, stride: 2}}
  - add: [[{conv: {name: d, filters: 5, kernel: 1}}], []]
  - mul: [[], [gap, {conv: {name: g, filters: 5, kernel: 1}}, sigmoid]]
  - flatten
  - {dense: {name: fc, units: 4}}
""", lambda: Net(_branches, a=nn.Conv2d(3, 4, 3, padding=1), b=nn.Conv2d(3, 2, 1),
                 c=nn.Conv2d(9, 5, 3, 2), d=nn.Conv2d(5, 5, 1), g=nn.Conv2d(5, 5, 1),
                 fc=nn.Linear(5 * 5 * 5, 4))),
    # A squeeze-and-excitation gate is the first weighted layer: only its own dX is skipped.
    "gate_first": (HEAD.format(input="[3, 6, 6]") + """
  - mul: [[], [gap, {conv: {name: g, filters: 3, kernel: 1}}, sigmoid]]
  - {conv: {name: h, filters: 4, kernel: 3}}
""", lambda: Net(lambda m, x: m.h(x * torch.sigmoid(m.g(x.mean((2, 3), keepdim=True)))),
                 g=nn.Conv2d(3, 3, 1), h=nn.Conv2d(3, 4, 3))),
    # Frozen layers own no trainable parameter: b is the first to need no dX; c (frozen, after
    # b) needs dX but has no dW. A batch norm first makes the conv after it need dX (γ, β).
    "frozen": (HEAD.format(input="[3, 10, 10]") + """
  - {conv: {name: a, filters: 4, kernel: 3, trainable: false}}
  - {conv: {name: b, filters: 4, kernel: 3}}
  - {conv: {name: c, filters: 4, kernel: 3, trainable: false}}
  - {conv: {name: d, filters: 2, kernel: 1}}
""", lambda: Net(lambda m, x: m.d(m.c(m.b(m.a(x)))), a=_frozen(nn.Conv2d(3, 4, 3)),
                 b=nn.Conv2d(4, 4, 3), c=_frozen(nn.Conv2d(4, 4, 3)), d=nn.Conv2d(4, 2, 1))),
    "norm_first": (HEAD.format(input="[3, 6, 6]") + """
  - {bn: {name: bn}}
  - {conv: {name: a, filters: 4, kernel: 3}}
""", lambda: Net(lambda m, x: m.a(m.bn(x)), bn=nn.BatchNorm2d(3), a=nn.Conv2d(3, 4, 3))),
}


def _branches(m, x):
    y = torch.cat([m.a(x), m.b(F.max_pool2d(x, 3, 1, 1)), x], 1)
    y = m.c(y)
    y = m.d(y) + y
    y = y * torch.sigmoid(m.g(y.mean((2, 3), keepdim=True)))
    return m.fc(y.flatten(1))


@pytest.mark.parametrize("case", list(SMALL))
def test_small_spec_per_layer_against_autograd(case):
    text, build = SMALL[case]
    analysis = analyze(loads(text, file=f"{case}.yaml"))
    torch.manual_seed(0)
    net = build().train()
    batch = 5  # no dense layer here has 5 units (BackwardCalls tells dX from dW by it)
    counts, calls = measure(net, torch.randn(batch, *analysis.network.input_shape))
    # The torch module is the spec: the same forward MACs per layer.
    rows = {r.name: r for r in analysis.rows}
    for name, module in net.named_children():
        if isinstance(module, WEIGHTED):
            assert per_image_macs(counts[name][0], batch) == rows[name].macs, name
    assert per_image_macs(counts["Global"][1], batch) == sum(flop_counter_view(analysis).values())
    assert calls == our_calls(analysis)


def test_small_specs_first_layers_compute_no_input_gradient():
    """Which layers have no dX (the rule of calc/backward.py), as autograd decided above."""
    no_dx = {case: [c.name for c in backward_costs(analyze(loads(text)))
                    if c.dw_macs and not c.dx_macs]
             for case, (text, _) in SMALL.items()}
    assert no_dx == {"conv": ["c1"], "conv_transpose": ["up1"], "dense": ["fc1"],
                     "branches": ["a", "b"], "gate_first": ["g"], "frozen": ["b"],
                     "norm_first": []}
