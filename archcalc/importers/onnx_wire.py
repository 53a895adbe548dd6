"""An ONNX file without its weights' bytes: what `archcalc summary model.onnx` needs.

A network's structure (nodes, attributes, the weights' names, types and dims) is a few
hundred kB; its weights are the other 99.9% of the file (ResNet-152: 240 MB). Parsing the
whole protobuf copies every weight twice (the read, then the message) before any of it is
looked at. This module walks the protobuf wire format of the file's top levels instead —
ModelProto → GraphProto → TensorProto (the initializers) — reading keys and lengths only, and
seeks past every initializer's data field longer than LARGE_BYTES. The bytes it keeps are
re-framed into a smaller, valid ModelProto that onnx parses in milliseconds.

Field numbers are ONNX's (onnx/onnx.proto: ModelProto.graph = 7, GraphProto.initializer = 5,
TensorProto.name = 8, its data fields float_data = 4, int32_data = 5, int64_data = 7,
raw_data = 9, double_data = 10, uint64_data = 11). Wire types are protobuf's (0 varint,
1 fixed64, 2 length-delimited, 5 fixed32).

Whenever the walk meets something it does not expect (a group wire type, a length past the
end, a short read), it gives up and the importer parses the whole file as before: that path
words every error about a truncated or corrupt file, and keeps its bounds.
"""

from __future__ import annotations

from typing import BinaryIO

# An initializer's data field longer than this is skipped: 1,024 values of 16 bytes, so
# every constant the importer evaluates or shape inference reads (shape targets, pads,
# scales: at most SMALL_CONSTANT = 1,024 elements) keeps its data.
LARGE_BYTES = 16 * 1024
# A file whose top levels hold more fields than this is parsed whole (in C) instead: the
# walk is Python, and a crafted file of tiny fields must not make it slow. ResNet-152's file
# has about 5,000 (a node is one field of the graph: its insides are not walked).
MAX_FIELDS = 500_000

_MODEL_GRAPH, _GRAPH_INITIALIZER, _TENSOR_NAME = 7, 5, 8
_TENSOR_DATA = frozenset({4, 5, 7, 9, 10, 11})
# Bytes read at a time while walking the small fields. Small, because after each skipped
# weight the walk reads again at the next key: the window is mostly what it looks at.
_WINDOW = 8 * 1024


class _Odd(Exception):
    """The bytes are not what the walk expects: parse the whole file instead."""


class _Source:
    """Random access to a file through one window of bytes: reads what the walk looks at
    (keys, lengths, small fields), never what it skips."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self.handle, self.size = handle, size
        self.start, self.data = 0, b""
        self.fields = 0

    def take(self, begin: int, end: int) -> bytes:
        if end > self.size or begin < 0:
            raise _Odd
        if not (self.start <= begin and end <= self.start + len(self.data)):
            self.handle.seek(begin)
            self.data = self.handle.read(max(end - begin, _WINDOW))
            self.start = begin
            if len(self.data) < end - begin:  # the file shrank under us
                raise _Odd
        return self.data[begin - self.start:end - self.start]

    def varint(self, pos: int) -> tuple[int, int]:
        """(value, the position after it)."""
        data = self.take(pos, min(pos + 10, self.size))  # a varint has at most 10 bytes
        value = shift = 0
        for offset, byte in enumerate(data):
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value, pos + offset + 1
            shift += 7
        raise _Odd


def _fields(src: _Source, begin: int, end: int):
    """(field number, wire type, where the field's key starts, where its value starts, where
    it ends) for each field of the message in [begin, end)."""
    pos = begin
    while pos < end:
        key, value_at = src.varint(pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, stop = src.varint(value_at)
        elif wire == 1:
            stop = value_at + 8
        elif wire == 5:
            stop = value_at + 4
        elif wire == 2:
            length, value_at = src.varint(value_at)
            stop = value_at + length
        else:  # groups (3, 4) are not in ONNX's schema
            raise _Odd
        src.fields += 1
        if number == 0 or stop > end or src.fields > MAX_FIELDS:
            raise _Odd
        yield number, wire, pos, value_at, stop
        pos = stop


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _framed(number: int, body: bytes) -> bytes:
    return _varint_bytes(number << 3 | 2) + _varint_bytes(len(body)) + body


class _Pieces:
    """The bytes kept, as few slices as possible: consecutive kept fields are one slice
    (a file of a million tiny fields is not a million bytes objects)."""

    def __init__(self, src: _Source) -> None:
        self.src, self.parts, self.run = src, [], None

    def keep(self, begin: int, end: int) -> None:
        if self.run is not None and self.run[1] == begin:
            self.run[1] = end
            return
        self.flush()
        self.run = [begin, end]

    def add(self, data: bytes) -> None:
        self.flush()
        self.parts.append(data)

    def flush(self) -> None:
        if self.run is not None:
            self.parts.append(self.src.take(*self.run))
            self.run = None

    def joined(self) -> bytes:
        self.flush()
        return b"".join(self.parts)


def _tensor(src: _Source, begin: int, end: int, skipped: set[str]) -> bytes:
    """A TensorProto's bytes without its large data fields (its name joins `skipped`). A
    tensor with two data fields is left to the whole parse: protobuf's rules for repeats
    (the last raw_data wins, repeated values concatenate) are not worth copying here."""
    kept, name, dropped, data_fields = _Pieces(src), None, False, 0
    for number, wire, key_at, value_at, stop in _fields(src, begin, end):
        if number in _TENSOR_DATA:
            data_fields += 1
            if data_fields > 1:
                raise _Odd
            if wire == 2 and stop - value_at > LARGE_BYTES:
                dropped = True
                continue
        if number == _TENSOR_NAME and wire == 2:
            name = src.take(value_at, stop)  # the last one, as protobuf reads it
        kept.keep(key_at, stop)
    if dropped:
        try:
            skipped.add((name or b"").decode("utf-8"))
        except UnicodeDecodeError:  # protobuf would refuse the name: let it say so
            raise _Odd from None
    return kept.joined()


def _graph(src: _Source, begin: int, end: int, skipped: set[str]) -> bytes:
    kept = _Pieces(src)
    for number, wire, key_at, value_at, stop in _fields(src, begin, end):
        if number == _GRAPH_INITIALIZER and wire == 2:
            kept.add(_framed(number, _tensor(src, value_at, stop, skipped)))
        else:
            kept.keep(key_at, stop)
    return kept.joined()


def light_bytes(handle: BinaryIO, size: int) -> tuple[bytes, frozenset[str]] | None:
    """(a ModelProto's bytes without the initializers' large data, the names of the
    initializers whose data was left out), or None when the file's structure is not what
    the walk expects (the caller then parses the whole file)."""
    src = _Source(handle, size)
    kept, skipped = _Pieces(src), set()
    try:
        for number, wire, key_at, value_at, stop in _fields(src, 0, size):
            if number == _MODEL_GRAPH and wire == 2:
                kept.add(_framed(number, _graph(src, value_at, stop, skipped)))
            else:
                kept.keep(key_at, stop)
        return kept.joined(), frozenset(skipped)
    except _Odd:
        return None
