"""Triton python-backend model: one stage graph (`model.onnx` next to this file) run by ONNX Runtime.

Stands in for Triton's onnxruntime backend where the server has none (the nvidia-pytriton wheel
bundles only the python backend): the same model name, inputs, outputs, max_batch_size and
dynamic batching as the onnxruntime config. With max_batch_size > 0 the requests of one
execute() (the dynamic batcher's batch) are concatenated along axis 0, run as one batch and
split back per request, as the onnxruntime backend does. Runs in the server venv (numpy<2).
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.max_batch_size = int(config.get("max_batch_size", 0))
        self.input_names = [i["name"] for i in config["input"]]
        self.output_names = [o["name"] for o in config["output"]]
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        options = ort.SessionOptions()
        threads = int(config.get("parameters", {}).get("intra_op_threads", {}).get("string_value", "1"))
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def _run(self, feeds):
        return self.session.run(self.output_names, feeds)

    def execute(self, requests):
        inputs = [
            {name: pb_utils.get_input_tensor_by_name(r, name).as_numpy() for name in self.input_names}
            for r in requests
        ]
        if self.max_batch_size > 0 and len(requests) > 1:
            sizes = [int(feeds[self.input_names[0]].shape[0]) for feeds in inputs]
            batch = {n: np.concatenate([feeds[n] for feeds in inputs], axis=0) for n in self.input_names}
            outputs = self._run(batch)
            bounds = np.cumsum([0] + sizes)
            per_request = [[o[bounds[i]:bounds[i + 1]] for o in outputs] for i in range(len(requests))]
        else:
            per_request = [self._run(feeds) for feeds in inputs]
        return [
            pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor(n, np.ascontiguousarray(o)) for n, o in zip(self.output_names, outs)]
            )
            for outs in per_request
        ]

    def finalize(self):
        self.session = None
