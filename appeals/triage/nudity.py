"""NudeNet's detector, run for throughput: the same ONNX model that ships in the `nudenet` wheel
(320n.onnx), the same preprocessing and the same thresholds, so the detections are NudeNet's
(tests/appeals/test_nudity_runner.py compares them), with three changes that cost nothing in
answers and a lot in time on a small CPU (docs/benchmarks.md, "Images"):

- the onnxruntime session is ours, with its thread count set (`threads`, TRIAGE_ONNX_THREADS):
  onnxruntime's default takes every core, which on a 2-core machine shared with the web process
  and other workers makes each inference wait for the busiest core;
- images are run in batches (one `run` for up to `batch_size` images);
- NudeNet's post-processing walks 2,100 candidate boxes in a Python loop (about 15 ms an
  image); here it is one vectorised numpy pass before the same non-maximum suppression.

Framework-free: bytes, paths or arrays in, NudeNet's dicts out.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

SCORE_THRESHOLD = 0.2  # NudeNet's: candidates below it are dropped
NMS_SCORE, NMS_IOU = 0.25, 0.45  # NudeNet's cv2.dnn.NMSBoxes arguments


def _labels() -> list[str]:
    import nudenet.nudenet as upstream

    return list(vars(upstream)["__labels"])  # module-level, so not name-mangled


class NudityRunner:
    def __init__(self, *, threads: int = 1, batch_size: int = 4, model_path: str | None = None):
        import nudenet
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = max(0, threads)  # 0: onnxruntime's default (all cores)
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        path = model_path or os.path.join(os.path.dirname(nudenet.__file__), "320n.onnx")
        self.session = onnxruntime.InferenceSession(
            path, options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name
        self.size = 320
        self.batch_size = max(1, batch_size)
        self.labels = _labels()

    def preprocess(self, image) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        """NudeNet's `_read_image`, step for step: the blob and (pad_x, pad_y, width, height)."""
        import cv2

        if isinstance(image, bytes):
            mat = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_UNCHANGED)
        elif isinstance(image, str):
            mat = cv2.imread(image)
        else:
            mat = image
        if mat is None:
            raise ValueError("the image could not be decoded")
        height, width = mat.shape[:2]
        mat = cv2.cvtColor(mat, cv2.COLOR_RGBA2BGR)
        side = max(height, width)
        pad_x, pad_y = side - width, side - height
        padded = cv2.copyMakeBorder(mat, 0, pad_y, 0, pad_x, cv2.BORDER_CONSTANT)
        blob = cv2.dnn.blobFromImage(
            padded, 1 / 255.0, (self.size, self.size), (0, 0, 0), swapRB=True, crop=False
        )
        return blob, (pad_x, pad_y, width, height)

    def postprocess(self, output: np.ndarray, geometry: tuple[int, int, int, int]) -> list[dict]:
        """NudeNet's `_postprocess` for one image's output ([1, 4 + labels, candidates])."""
        import cv2

        pad_x, pad_y, width, height = geometry
        rows = np.transpose(np.squeeze(output, axis=0))
        class_scores = rows[:, 4:]
        best = class_scores.max(axis=1)
        keep = best >= SCORE_THRESHOLD
        if not keep.any():
            return []
        rows, best = rows[keep], best[keep]
        class_ids = class_scores[keep].argmax(axis=1)
        w, h = rows[:, 2], rows[:, 3]
        x, y = rows[:, 0] - w / 2, rows[:, 1] - h / 2
        # In NudeNet's order of operations (float32 times int, then divided), so every box
        # rounds exactly as NudeNet's does.
        x = x * (width + pad_x) / self.size
        y = y * (height + pad_y) / self.size
        w = w * (width + pad_x) / self.size
        h = h * (height + pad_y) / self.size
        x = np.clip(x, 0, width)
        y = np.clip(y, 0, height)
        w = np.minimum(w, width - x)
        h = np.minimum(h, height - y)
        boxes = np.stack([x, y, w, h], axis=1)
        indices = cv2.dnn.NMSBoxes(boxes.tolist(), best.tolist(), NMS_SCORE, NMS_IOU)
        return [
            {
                "class": self.labels[int(class_ids[i])],
                "score": float(best[i]),
                "box": [int(v) for v in boxes[i]],
            }
            for i in np.asarray(indices).reshape(-1)
        ]

    def detect_batch(self, images: Sequence) -> list[list[dict]]:
        results: list[list[dict]] = []
        for start in range(0, len(images), self.batch_size):
            prepared = [self.preprocess(image) for image in images[start : start + self.batch_size]]
            batch = np.vstack([blob for blob, _ in prepared])
            (output,) = self.session.run(None, {self.input_name: batch})[:1]
            results.extend(
                self.postprocess(output[j : j + 1], geometry)
                for j, (_, geometry) in enumerate(prepared)
            )
        return results

    def detect(self, image) -> list[dict]:
        return self.detect_batch([image])[0]
