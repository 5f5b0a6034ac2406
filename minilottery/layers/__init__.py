"""Hand-written layers: each ``forward`` sits next to its ``backward``, one concept per module."""

from minilottery.layers.activation import ReLU
from minilottery.layers.base import Layer
from minilottery.layers.conv import Conv2d
from minilottery.layers.conv_reference import ReferenceConv2d
from minilottery.layers.dense import Dense
from minilottery.layers.dropout import Dropout
from minilottery.layers.flatten import Flatten
from minilottery.layers.im2col import col2im, im2col
from minilottery.layers.pooling import MaxPool2d
from minilottery.layers.sequential import Sequential

__all__ = [
    "Conv2d", "Dense", "Dropout", "Flatten", "Layer", "MaxPool2d", "ReLU", "ReferenceConv2d", "Sequential", "col2im",
    "im2col",
]
