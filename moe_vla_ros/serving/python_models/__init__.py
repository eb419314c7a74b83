"""Triton python-backend model files, copied into a repository as `<model>/1/model.py`.

They run inside Triton's python backend (server venv, numpy<2), never inside this package:
`reasoning.py` is the server-side greedy decode loop (BLS calls to the reasoning graphs);
`stand_in.py` runs a stage graph with ONNX Runtime where Triton's onnxruntime backend is missing.
"""
