"""The lean image's promise: serving an exported model never imports TensorFlow or Keras."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SERVE_AND_SEGMENT = """
import io, sys, time
import numpy as np
from PIL import Image
from fastapi.testclient import TestClient
import cityseg.cli                      # the `cityseg serve` entry point and all its verbs
from cityseg.service.app import create_app
from cityseg.service.settings import Settings

app = create_app(Settings(run=sys.argv[1], runtime=sys.argv[2]))
image = np.zeros((24, 40, 3), np.uint8)
image[:, 20:, 0] = 255                   # the toy model's class follows the red channel
buffer = io.BytesIO()
Image.fromarray(image).save(buffer, format="PNG")
with TestClient(app) as client:
    deadline = time.monotonic() + 60
    while client.get("/health").json()["status"] == "loading" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.get("/health").json()["status"] == "ok", client.get("/health").text
    answer = client.post("/v1/segment?format=categories", content=buffer.getvalue())
    assert answer.status_code == 200, answer.text
mask = np.asarray(Image.open(io.BytesIO(answer.content)))
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf2onnx"))
print(f"classes={sorted(set(mask.ravel().tolist()))} heavy={heavy}")
"""


def toy_onnx(path: Path, size: tuple[int, int] = (32, 16)) -> Path:
    """An ONNX model (B, H, W, 3) -> (B, H, W, 8): logit c = red * weight_c, with its sidecar."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.zeros((3, 8), np.float32)
    weights[0, 7] = 1.0  # red pixels -> vehicle (7); black ones tie at 0 -> void (0)
    width, height = size
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["image", "w"], ["logits"])],
        "toy",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [None, height, width, 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, height, width, 8])],
        [numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    sidecar = {"name": "toy", "input_size": [width, height], "format": "onnx"}
    path.with_name(path.name + ".json").write_text(json.dumps(sidecar))
    return path


@pytest.mark.parametrize("runtime", ["auto", "onnx"])
def test_serving_an_onnx_export_imports_no_tensorflow(tmp_path: Path, runtime: str) -> None:
    model = toy_onnx(tmp_path / "toy.onnx")
    done = subprocess.run(
        [sys.executable, "-c", SERVE_AND_SEGMENT, str(model), runtime],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "classes=[0, 7] heavy=[]"
