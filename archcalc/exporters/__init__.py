"""Exporters: a resolved spec (and the executor's weights) written in another framework's form.

They sit at the edge, like the importers: an exporter walks archcalc.spec.tree (Sequence /
Merge / Leaf) and reads the executor's arrays by their names ("<layer>.<param>"). Neither
knows the calculator's internals: torch_export asks its public analyze() for each layer's
input shape (no arrays needed), onnx_export reads shapes off the built executor. onnx_export builds an onnx.ModelProto; torch_export writes the source of
a PyTorch module. Their optional packages (onnx) are imported inside the functions that need
them, so importing this package costs nothing.
"""
