"""The speech engine: Kokoro-82M on onnxruntime, its assets and voices."""
