#!/usr/bin/env python3
"""Convert a CTranslate2 Whisper model (faster-whisper layout) to whisper.cpp's ggml format.

    scripts/ct2_to_ggml.py [--type f16|q8_0|q5_0] MODEL_DIR OUT.bin

MODEL_DIR holds `model.bin` (CTranslate2 binary format, version 6, float16 weights) and
`vocabulary.txt` (one GPT-2 byte-level token per line, as faster-whisper ships it).
Standard library only (no numpy, no torch, no ctranslate2): it runs on a bare CPython 3.

What has to change between the two layouts (each step is checked, not assumed):
  * dimensions come from tensor shapes (embedding rows = n_vocab, positional rows = the
    context lengths, conv1 input channels = n_mels) and from the `num_heads` scalars;
  * CTranslate2 fuses the self-attention Q/K/V projections (`linear_0`, 3·d rows) and the
    cross-attention K/V projections (`linear_1`, 2·d rows): they are split row-wise; the key
    projection has no bias in Whisper, so its (all-zero) slice of the fused bias is dropped
    after checking that it is zero;
  * layer-norm gamma/beta become `.weight`/`.bias`, `linear_N` become the PyTorch names;
  * 1-D tensors, the conv biases (reshaped to [n, 1]) and both positional embeddings are
    widened to float32, as whisper.cpp expects; matrices stay float16;
  * the 80×201 mel filterbank (16 kHz, n_fft 400, Slaney scale and normalisation, as
    librosa/OpenAI Whisper build it) is generated and stored in the file;
  * the vocabulary is mapped from GPT-2's printable byte alphabet back to raw bytes; only the
    regular tokens (those before `<|endoftext|>`) are written, whisper.cpp adds the
    special ones itself.

`--type q8_0` / `q5_0` quantizes the matrices whisper.cpp multiplies with (every 2-D
weight: attention, MLP, token embedding) into ggml's q8_0 / q5_0 blocks (32 values and one
float16 scale each), as whisper.cpp's own `quantize` tool does; conv kernels stay float16,
vectors and positional embeddings float32. The header's ftype says which (q8_0 = 7,
q5_0 = 8, plus ggml's quantization version 2 × 1000). Rounding is half away from zero with
the float16-rounded scale, in Python floats: the output is the same on every machine.
"""

import math
import os
import struct
import sys
from array import array

GGML_MAGIC = 0x67676D6C
CT2_F32, CT2_I8, CT2_I16, CT2_I32, CT2_F16 = 0, 1, 2, 3, 4
DTYPE_SIZE = {0: 4, 1: 1, 2: 2, 3: 4, 4: 2, 5: 2}


class ConvertError(Exception):
    pass


def read_ct2(path):
    """Variables of a CTranslate2 model.bin: name -> (shape, dtype, raw bytes)."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 0

    def take(fmt):
        nonlocal pos
        size = struct.calcsize("<" + fmt)
        if pos + size > len(data):
            raise ConvertError(f"{path}: truncated at byte {pos}")
        v = struct.unpack_from("<" + fmt, data, pos)
        pos += size
        return v[0]

    def string():
        nonlocal pos
        n = take("H")
        if pos + n > len(data) or n == 0:
            raise ConvertError(f"{path}: bad string at byte {pos}")
        s = data[pos:pos + n - 1].decode("utf-8")
        pos += n
        return s

    version = take("I")
    if version != 6:
        raise ConvertError(f"{path}: CTranslate2 binary version {version}, expected 6")
    spec = string()
    if spec != "WhisperSpec":
        raise ConvertError(f"{path}: model spec {spec!r} is not WhisperSpec")
    take("I")  # spec revision
    variables = {}
    for _ in range(take("I")):
        name = string()
        rank = take("B")
        shape = tuple(take("I") for _ in range(rank))
        dtype = take("B")
        nbytes = take("I")
        if dtype not in DTYPE_SIZE:
            raise ConvertError(f"{path}: {name}: unknown dtype id {dtype}")
        count = 1
        for d in shape:
            count *= d
        if count * DTYPE_SIZE[dtype] != nbytes:
            raise ConvertError(f"{path}: {name}: {nbytes} bytes for shape {shape}")
        if pos + nbytes > len(data):
            raise ConvertError(f"{path}: {name}: data truncated")
        variables[name] = (shape, dtype, memoryview(data)[pos:pos + nbytes])
        pos += nbytes
    for _ in range(take("I")):
        alias, target = string(), string()
        if target in variables:
            variables[alias] = variables[target]
    if pos != len(data):
        raise ConvertError(f"{path}: {len(data) - pos} trailing bytes")
    return variables


def scalar(variables, name):
    shape, dtype, raw = variables[name]
    fmt = {CT2_I8: "b", CT2_I16: "h", CT2_I32: "i"}.get(dtype)
    if shape != () or fmt is None:
        raise ConvertError(f"{name}: expected an integer scalar")
    return struct.unpack("<" + fmt, raw)[0]


# --- quantization (ggml block formats) ------------------------------------------------------

QK = 32  # values per block, both formats
GGML_TYPE = {"f16": 1, "q5_0": 6, "q8_0": 8}
GGML_FTYPE = {"f16": 1, "q5_0": 8, "q8_0": 7}
GGML_QNT_VERSION = 2
GGML_QNT_VERSION_FACTOR = 1000


def _round(x):
    # C roundf: half away from zero (Python's round() is half to even).
    return int(x + 0.5) if x >= 0 else -int(-x + 0.5)


def _f16(x):
    """x rounded to float16: (its bytes, its value)."""
    b = struct.pack("<e", x)
    return b, struct.unpack("<e", b)[0]


def quantize_q8_0(vals):
    """float values (a multiple of 32) -> q8_0 blocks: f16 scale d, 32 int8 (x ≈ d·q)."""
    out = bytearray()
    pack_q = struct.Struct("<32b").pack
    for i in range(0, len(vals), QK):
        blk = vals[i:i + QK]
        amax = max(max(blk), -min(blk))
        db, d = _f16(amax / 127.0)
        out += db
        if d == 0.0:
            out += bytes(QK)
            continue
        inv = 1.0 / d
        out += pack_q(*[max(-127, min(127, _round(x * inv))) for x in blk])
    return out


def quantize_q5_0(vals):
    """float values (a multiple of 32) -> q5_0 blocks: f16 scale d, 32 high bits, 16 bytes
    of low nibbles (x ≈ d·(q − 16), q in 0..31; value j and j+16 share a byte)."""
    out = bytearray()
    half = QK // 2
    for i in range(0, len(vals), QK):
        blk = vals[i:i + QK]
        hi, lo = max(blk), min(blk)
        m = hi if hi >= -lo else lo  # the value of largest magnitude, with its sign
        db, d = _f16(m / -16.0)
        out += db
        inv = 1.0 / d if d != 0.0 else 0.0
        q = [max(0, min(31, int(x * inv + 16.5))) for x in blk]
        qh = 0
        for j in range(QK):
            qh |= (q[j] >> 4) << j
        out += struct.pack("<I", qh)
        out += bytes((q[j] & 0x0F) | ((q[j + half] & 0x0F) << 4) for j in range(half))
    return out


QUANTIZE = {"q8_0": quantize_q8_0, "q5_0": quantize_q5_0}


def f16_to_f32(raw):
    n = len(raw) // 2
    return array("f", struct.unpack(f"<{n}e", raw)).tobytes()


def is_zero_f16(raw):
    # +0.0 and -0.0 only.
    return all(b == 0 for b in bytes(raw).replace(b"\x00\x80", b"\x00\x00"))


# --- mel filterbank (librosa.filters.mel, htk=False, norm="slaney") ----------------------

def hz_to_mel(f):
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, math.log(6.4) / 27.0
    return min_log_mel + math.log(f / min_log_hz) / logstep if f >= min_log_hz else f / f_sp


def mel_to_hz(m):
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, math.log(6.4) / 27.0
    return min_log_hz * math.exp(logstep * (m - min_log_mel)) if m >= min_log_mel else f_sp * m


def mel_filters(n_mels=80, sr=16000, n_fft=400):
    n_freqs = n_fft // 2 + 1
    fft_freqs = [i * (sr / 2) / (n_freqs - 1) for i in range(n_freqs)]
    lo, hi = hz_to_mel(0.0), hz_to_mel(sr / 2)
    mel_f = [mel_to_hz(lo + (hi - lo) * i / (n_mels + 1)) for i in range(n_mels + 2)]
    fdiff = [mel_f[i + 1] - mel_f[i] for i in range(n_mels + 1)]
    out = []
    for i in range(n_mels):
        enorm = 2.0 / (mel_f[i + 2] - mel_f[i])
        row = []
        for f in fft_freqs:
            lower = -(mel_f[i] - f) / fdiff[i]
            upper = (mel_f[i + 2] - f) / fdiff[i + 1]
            row.append(max(0.0, min(lower, upper)) * enorm)
        out.append(row)
    return out


# --- vocabulary ----------------------------------------------------------------------------

def byte_decoder():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def read_vocab(path):
    with open(path, encoding="utf-8") as f:
        tokens = f.read().split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()
    if "<|endoftext|>" not in tokens:
        raise ConvertError(f"{path}: no <|endoftext|> token")
    regular = tokens[: tokens.index("<|endoftext|>")]
    dec = byte_decoder()
    out = []
    for i, t in enumerate(regular):
        try:
            out.append(bytes(dec[c] for c in t))
        except KeyError as e:
            raise ConvertError(f"{path}:{i + 1}: character {e} is not in the GPT-2 byte alphabet")
    return out, len(tokens)


# --- conversion ----------------------------------------------------------------------------

def convert(model_dir, out_path, wtype="f16"):
    if wtype not in GGML_TYPE:
        raise ConvertError(f"unknown --type {wtype!r} (f16, q8_0, q5_0)")
    v = read_ct2(os.path.join(model_dir, "model.bin"))
    vocab, vocab_lines = read_vocab(os.path.join(model_dir, "vocabulary.txt"))

    def shape(name):
        if name not in v:
            raise ConvertError(f"{model_dir}: tensor {name} is missing")
        return v[name][0]

    n_vocab, n_text_state = shape("decoder/embeddings/weight")
    n_text_ctx, _ = shape("decoder/position_encodings/encodings")
    n_audio_ctx, n_audio_state = shape("encoder/position_encodings/encodings")
    _, n_mels, _ = shape("encoder/conv1/weight")
    n_audio_layer = sum(1 for k in v if k.startswith("encoder/layer_") and k.endswith("ffn/linear_0/weight"))
    n_text_layer = sum(1 for k in v if k.startswith("decoder/layer_") and k.endswith("ffn/linear_0/weight"))
    n_audio_head = scalar(v, "encoder/num_heads")
    n_text_head = scalar(v, "decoder/num_heads")
    if vocab_lines != n_vocab:
        raise ConvertError(f"vocabulary has {vocab_lines} tokens, the embedding {n_vocab} rows")

    tensors = []  # (ggml name, shape, ct2 dtype, raw bytes)

    def add(name, src, rows=None, reshape=None):
        shp, dtype, raw = v[src]
        if dtype != CT2_F16:
            raise ConvertError(f"{src}: dtype {dtype}, expected float16")
        if rows is not None:
            lo, hi = rows
            row_bytes = len(raw) // shp[0]
            raw = raw[lo * row_bytes: hi * row_bytes]
            shp = (hi - lo,) + shp[1:]
        tensors.append((name, reshape or shp, raw))

    def fused(prefix, src, parts, d):
        # parts: names in order of the row blocks; None = a block that must be zero-bias
        for i, part in enumerate(parts):
            add(f"{prefix}.{part}.weight", f"{src}/weight", rows=(i * d, (i + 1) * d))
            bias = f"{src}/bias"
            if part == "key":
                _, _, raw = v[bias]
                if not is_zero_f16(raw[i * d * 2:(i + 1) * d * 2]):
                    raise ConvertError(f"{bias}: the key bias is not zero; cannot drop it")
            else:
                add(f"{prefix}.{part}.bias", bias, rows=(i * d, (i + 1) * d))

    def ln(name, src):
        add(f"{name}.weight", f"{src}/gamma")
        add(f"{name}.bias", f"{src}/beta")

    def linear(name, src):
        add(f"{name}.weight", f"{src}/weight")
        add(f"{name}.bias", f"{src}/bias")

    add("encoder.positional_embedding", "encoder/position_encodings/encodings")
    add("encoder.conv1.weight", "encoder/conv1/weight")
    add("encoder.conv1.bias", "encoder/conv1/bias", reshape=(n_audio_state, 1))
    add("encoder.conv2.weight", "encoder/conv2/weight")
    add("encoder.conv2.bias", "encoder/conv2/bias", reshape=(n_audio_state, 1))
    for i in range(n_audio_layer):
        s, b = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        ln(f"{b}.attn_ln", f"{s}/self_attention/layer_norm")
        fused(f"{b}.attn", f"{s}/self_attention/linear_0", ["query", "key", "value"], n_audio_state)
        linear(f"{b}.attn.out", f"{s}/self_attention/linear_1")
        ln(f"{b}.mlp_ln", f"{s}/ffn/layer_norm")
        linear(f"{b}.mlp.0", f"{s}/ffn/linear_0")
        linear(f"{b}.mlp.2", f"{s}/ffn/linear_1")
    ln("encoder.ln_post", "encoder/layer_norm")

    add("decoder.positional_embedding", "decoder/position_encodings/encodings")
    add("decoder.token_embedding.weight", "decoder/embeddings/weight")
    for i in range(n_text_layer):
        s, b = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        ln(f"{b}.attn_ln", f"{s}/self_attention/layer_norm")
        fused(f"{b}.attn", f"{s}/self_attention/linear_0", ["query", "key", "value"], n_text_state)
        linear(f"{b}.attn.out", f"{s}/self_attention/linear_1")
        ln(f"{b}.cross_attn_ln", f"{s}/attention/layer_norm")
        linear(f"{b}.cross_attn.query", f"{s}/attention/linear_0")
        fused(f"{b}.cross_attn", f"{s}/attention/linear_1", ["key", "value"], n_text_state)
        linear(f"{b}.cross_attn.out", f"{s}/attention/linear_2")
        ln(f"{b}.mlp_ln", f"{s}/ffn/layer_norm")
        linear(f"{b}.mlp.0", f"{s}/ffn/linear_0")
        linear(f"{b}.mlp.2", f"{s}/ffn/linear_1")
    ln("decoder.ln", "decoder/layer_norm")

    f32_names = {"encoder.conv1.bias", "encoder.conv2.bias",
                 "encoder.positional_embedding", "decoder.positional_embedding"}
    ftype = GGML_FTYPE[wtype]
    if wtype != "f16":
        ftype += GGML_QNT_VERSION * GGML_QNT_VERSION_FACTOR
    quantized = 0
    tmp = out_path + ".tmp"
    with open(tmp, "wb") as out:
        out.write(struct.pack("<12i", GGML_MAGIC, n_vocab, n_audio_ctx, n_audio_state,
                              n_audio_head, n_audio_layer, n_text_ctx, n_text_state,
                              n_text_head, n_text_layer, n_mels, ftype))
        filters = mel_filters(n_mels)
        out.write(struct.pack("<2i", len(filters), len(filters[0])))
        for row in filters:
            out.write(array("f", row).tobytes())
        out.write(struct.pack("<i", len(vocab)))
        for tok in vocab:
            out.write(struct.pack("<i", len(tok)))
            out.write(tok)
        for name, shp, raw in tensors:
            to_f32 = len(shp) < 2 or name in f32_names
            # whisper.cpp makes every 2-D weight of the model's type; conv kernels (3-D)
            # stay float16.
            quantize = wtype != "f16" and not to_f32 and len(shp) == 2
            if quantize:
                if shp[-1] % QK:
                    raise ConvertError(f"{name}: row length {shp[-1]} is not a multiple of {QK}")
                vals = struct.unpack(f"<{len(raw) // 2}e", raw)
                data, ttype = QUANTIZE[wtype](vals), GGML_TYPE[wtype]
                quantized += 1
            elif to_f32:
                data, ttype = f16_to_f32(raw), 0
            else:
                data, ttype = raw, 1
            enc = name.encode()
            out.write(struct.pack("<3i", len(shp), len(enc), ttype))
            for d in reversed(shp):
                out.write(struct.pack("<i", d))
            out.write(enc)
            out.write(data)
    os.replace(tmp, out_path)
    return {
        "n_vocab": n_vocab, "n_audio_state": n_audio_state, "n_audio_head": n_audio_head,
        "n_audio_layer": n_audio_layer, "n_text_state": n_text_state,
        "n_text_head": n_text_head, "n_text_layer": n_text_layer, "n_mels": n_mels,
        "tensors": len(tensors), "multilingual": n_vocab >= 51865,
        "type": wtype, "quantized": quantized,
    }


def main(argv):
    args = argv[1:]
    wtype = "f16"
    if len(args) >= 2 and args[0] == "--type":
        wtype, args = args[1], args[2:]
    if len(args) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    try:
        info = convert(args[0], args[1], wtype)
    except (ConvertError, OSError, KeyError) as e:
        print(f"ct2_to_ggml: {e}", file=sys.stderr)
        return 1
    print("ct2_to_ggml: wrote", args[1], " ".join(f"{k}={val}" for k, val in info.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
