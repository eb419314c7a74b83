"""Triton python-backend model "reasoning": the greedy reasoning decode loop on the server.

One request = one trace (no client round trip per token): trunk_tokens [S, D] (+ batch axis)
and max_new_tokens [1] in; reasoning_ids [R], reasoning_mask [R] and reasoning_eos [1] (1 when
the row stopped at EOS) out. The loop calls the repository's "reasoning_context" model once and
"reasoning_step" once per token through BLS, so the graphs run on the server's onnxruntime
backend (TensorRT where configured). The requests of one execute() are decoded as one batch
when the reasoning graphs take a batch; rows stop independently (a finished row writes no more
tokens), so each row equals its own batch-1 decode (moe_vla_ros/runtime/decoding.py
greedy_decode, which this loop mirrors). Runs in the server venv (numpy<2).
"""

import json

import numpy as np
import triton_python_backend_utils as pb_utils


def _param(config, key):
    return config["parameters"][key]["string_value"]


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.max_batch_size = int(config.get("max_batch_size", 0))
        self.bos, self.eos, self.pad = (int(_param(config, k)) for k in ("bos_id", "eos_id", "pad_id"))
        self.max_tokens = int(_param(config, "max_reasoning_tokens"))  # R, the static buffer length
        self.context_model = _param(config, "context_model")
        self.step_model = _param(config, "step_model")
        self.graph_batch = _param(config, "graph_batch") == "dynamic"  # reasoning graphs take a batch

    def _infer(self, model, inputs, output):
        request = pb_utils.InferenceRequest(
            model_name=model, requested_output_names=[output],
            inputs=[pb_utils.Tensor(name, np.ascontiguousarray(value)) for name, value in inputs],
        )
        response = request.exec()
        if response.has_error():
            raise pb_utils.TritonModelException(f"{model}: {response.error().message()}")
        return pb_utils.get_output_tensor_by_name(response, output).as_numpy()

    def _decode(self, trunk_tokens, limits):
        """trunk_tokens [B, S, D], limits [B] -> ids [B, R], mask [B, R], eos [B]."""
        b, r = trunk_tokens.shape[0], self.max_tokens
        cross_kv = self._infer(self.context_model, [("trunk_tokens", trunk_tokens)], "cross_kv")
        tokens = np.full((b, r), self.pad, dtype=np.int64)  # [B, R]
        tokens[:, 0] = self.bos
        finished = np.zeros(b, dtype=bool)  # [B]
        eos = np.zeros(b, dtype=bool)  # [B]
        lengths = np.zeros(b, dtype=np.int64)  # [B]
        for i in range(int(limits.max(initial=0))):
            finished |= i >= limits  # a row past its own limit stops (greedy_decode's loop bound)
            if finished.all():
                break
            logits = self._infer(self.step_model, [("cross_kv", cross_kv), ("tokens", tokens)], "logits")  # [B, R, V]
            next_ids = logits[:, i, :].argmax(-1).astype(np.int64)  # [B]
            eos |= ~finished & (next_ids == self.eos)
            finished |= next_ids == self.eos
            write = ~finished
            tokens[write, i + 1] = next_ids[write]
            lengths[write] += 1
        ids = np.full((b, r), self.pad, dtype=np.int64)  # [B, R]
        ids[:, :-1] = tokens[:, 1:]  # drop BOS
        mask = (np.arange(r)[None, :] < lengths[:, None]).astype(np.int64)  # [B, R]
        ids[mask == 0] = self.pad
        return ids, mask, eos

    def execute(self, requests):
        trunk = [pb_utils.get_input_tensor_by_name(q, "trunk_tokens").as_numpy() for q in requests]
        limits = [pb_utils.get_input_tensor_by_name(q, "max_new_tokens").as_numpy().reshape(-1) for q in requests]
        sizes = [t.shape[0] for t in trunk]
        groups = [list(range(len(requests)))] if self.graph_batch else [[i] for i in range(len(requests))]
        results = [None] * len(requests)
        for group in groups:
            batch = np.concatenate([trunk[i] for i in group], axis=0)  # [B, S, D]
            row_limits = np.concatenate(
                [np.broadcast_to(np.minimum(limits[i][:1], self.max_tokens - 1), (sizes[i],)) for i in group]
            ).astype(np.int64)  # [B]
            ids, mask, eos = self._decode(batch, row_limits)
            start = 0
            for i in group:
                rows = slice(start, start + sizes[i])
                results[i] = (ids[rows], mask[rows], eos[rows].astype(np.int64).reshape(-1, 1))
                start += sizes[i]
        return [
            pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("reasoning_ids", ids), pb_utils.Tensor("reasoning_mask", mask),
                pb_utils.Tensor("reasoning_eos", eos),
            ])
            for ids, mask, eos in results
        ]
