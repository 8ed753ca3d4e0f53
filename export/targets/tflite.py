"""TFLite target (onnx2tf): placeholder until the converter lands."""
