"""Training: Kokoro rebuilt in PyTorch from the shipped ONNX, so a voice can be fitted by gradient descent."""
