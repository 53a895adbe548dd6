"""Which executor class runs which layer kind of the spec language."""

from __future__ import annotations

from archcalc.nn.activations import (ELU, GELU, HardSigmoid, HardSwish, LeakyReLU, Maxout, ReLU,
                                    ReLU6, Sigmoid, SiLU, Softmax, Tanh)
from archcalc.nn.base import Layer, Store
from archcalc.nn.conv import Conv2D, ConvTranspose2D
from archcalc.nn.dense import Dense, Dropout, Flatten
from archcalc.nn.norm import LRN, BatchNorm, LayerNorm
from archcalc.nn.padding import Crop, Pad
from archcalc.nn.pool import AvgPool, GlobalAvgPool, MaxPool
from archcalc.nn.recurrent import Embedding, Recurrent, ToSequence
from archcalc.nn.resample import AdaptiveAvgPool, AdaptiveMaxPool, Upsample

KINDS: dict[str, type[Layer]] = {
    "conv2d": Conv2D, "maxpool": MaxPool, "avgpool": AvgPool, "global_avgpool": GlobalAvgPool,
    "dense": Dense, "flatten": Flatten, "dropout": Dropout, "batchnorm": BatchNorm,
    "lrn": LRN, "layernorm": LayerNorm, "relu": ReLU, "leaky_relu": LeakyReLU, "elu": ELU,
    "sigmoid": Sigmoid, "tanh": Tanh, "softmax": Softmax, "maxout": Maxout,
    "relu6": ReLU6, "hardsigmoid": HardSigmoid, "hardswish": HardSwish, "silu": SiLU,
    "gelu": GELU, "adaptive_avgpool": AdaptiveAvgPool, "adaptive_maxpool": AdaptiveMaxPool,
    "upsample": Upsample,
    "conv_transpose2d": ConvTranspose2D, "pad": Pad, "crop": Crop,
    "rnn": Recurrent, "lstm": Recurrent, "gru": Recurrent, "embedding": Embedding,
    "to_sequence": ToSequence,
}


def make_layer(spec, name: str, store: Store) -> Layer:
    """The executor layer for one validated spec model (archcalc.spec.layers)."""
    return KINDS[spec.type](spec, name, store)
