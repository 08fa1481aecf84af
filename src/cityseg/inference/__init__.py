"""Inference: one Predictor over Keras, ONNX Runtime and LiteRT, and export with measured parity."""
