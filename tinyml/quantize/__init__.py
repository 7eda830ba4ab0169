"""Full-int8 quantization: Keras mirror of the torch chain, TFLite conversion, verification in TFLM.

    from tinyml.quantize import quantize_checkpoint
    report = quantize_checkpoint("runs/demo/train/best.pt", "runs/demo/model.tflite", data="synthetic")

Importing this package is cheap: torch and TensorFlow load when a function runs.
"""

from tinyml.quantize.quantize import (
    DEFAULT_CALIBRATION_SAMPLES,
    QuantReport,
    quantize_checkpoint,
    quantize_model,
)

__all__ = ["DEFAULT_CALIBRATION_SAMPLES", "QuantReport", "quantize_checkpoint", "quantize_model"]
