"""Segment one street image with an exported cityseg LiteRT model: no TensorFlow, no cityseg.

Needs only `ai-edge-litert`, NumPy and Pillow. Reads MODEL.tflite and its sidecar
MODEL.tflite.json (written by `cityseg export`), letterboxes the image to the model's
input size (aspect kept, zero padding), runs the model, crops the padding off the
prediction, resizes it back with nearest neighbour and writes the colour mask.

    python segment.py model.tflite street.png mask.png [--categories mask.npy]
"""

import argparse
import json
import os

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from PIL import Image


def letterbox(image, size):
    """Fit `image` (PIL, RGB) inside `size` = (w, h) keeping its aspect; pad with zeros."""
    scale = min(size[0] / image.width, size[1] / image.height)
    width = max(1, min(size[0], round(image.width * scale)))
    height = max(1, min(size[1], round(image.height * scale)))
    if (width, height) != image.size:
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    canvas = np.zeros((size[1], size[0], 3), np.uint8)
    left, top = (size[0] - width) // 2, (size[1] - height) // 2
    canvas[top : top + height, left : left + width] = np.asarray(image)
    return canvas, (left, top, width, height)


def segment(model_path, image):
    """Category ids uint8 (H, W) for a PIL RGB image, at the image's own size."""
    with open(model_path + ".json") as f:
        meta = json.load(f)
    interpreter = Interpreter(model_path=model_path, num_threads=os.cpu_count())
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]

    canvas, (left, top, width, height) = letterbox(image, tuple(meta["input_size"]))
    x = canvas[None].astype(np.float32)  # raw RGB 0..255: normalisation is inside the model
    if inp["dtype"] != np.float32:  # int8 input: quantise with the tensor's scale/zero-point
        scale, zero = inp["quantization"]
        info = np.iinfo(inp["dtype"])
        x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(inp["dtype"])
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    logits = interpreter.get_tensor(out["index"])[0]
    if out["dtype"] != np.float32:
        scale, zero = out["quantization"]
        logits = (logits.astype(np.float32) - zero) * scale
    categories = logits.argmax(axis=-1).astype(np.uint8)
    crop = categories[top : top + height, left : left + width]
    if crop.shape != (image.height, image.width):
        crop = np.asarray(Image.fromarray(crop).resize(image.size, Image.Resampling.NEAREST))
    return crop, np.array(meta["palette"], np.uint8)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="exported .tflite (its .json sidecar beside it)")
    parser.add_argument("image", help="input image (any size, any aspect)")
    parser.add_argument("mask", help="output colour mask (.png)")
    parser.add_argument("--categories", help="also save the category ids as .npy")
    args = parser.parse_args()
    categories, palette = segment(args.model, Image.open(args.image).convert("RGB"))
    Image.fromarray(palette[categories]).save(args.mask)
    if args.categories:
        np.save(args.categories, categories)


if __name__ == "__main__":
    main()
