"""A GGUF copy of a trained checkpoint, so that llama.cpp (5-8x faster on a CPU than torch in fp32)
can serve every model version, not only the packaged base model.

Why not llama.cpp's own converter: it is a script of the llama.cpp repository, not a package. A
trained version here always descends from a GGUF (the packaged model or an earlier version's copy),
so the copy takes that file's metadata (architecture, hyperparameters, tokenizer, chat template) as
it is and replaces only the tensors, mapped by gguf-py's own name table. The one layout change is
llama's: its GGUF stores q/k projections permuted for rotary embedding (transformers undoes this on
load, so it is redone here).

Every copy is checked before it is used (`agreement`): on fixed prompts, llama.cpp's next-token
logits are compared with the checkpoint's in transformers, and greedy completions token by token.
The result sits beside the copy in `gguf.json`; model_source serves the copy only when it passed.

    python -m engine.lm.gguf_export CHECKPOINT --like BASE.gguf [--type f16|bf16|f32]
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

GGUF_NAME = "model-{type}.gguf"
REPORT = "gguf.json"  # the served (f16) copy's check; another type's copy has its own (report_name)
TYPES = ("f16", "bf16", "f32")  # bf16: for CPUs with bf16 dot products (AVX512-BF16, AMX)
PERMUTED = {"llama"}  # architectures whose q/k projections llama.cpp stores permuted
SUPPORTED = {"llama", "qwen2"}
CHECK_PROMPTS = (
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "def sat(x: int):\n    return x * x == 144 and x > 0\n\ndef sol():\n    return",
    [{"role": "user", "content": "Write a Python function that reverses a string."}],
    [{"role": "user", "content": "What does `zip(*rows)` do in Python?"}],
    "import numpy as np\n\n# the mean of each column of a matrix\n",
)
MAX_LOGIT_DIFF = 1.0  # f16 rounding moves logits by ~0.01-0.1; a wrong layout moves them by whole units
GREEDY_TOKENS = 24


class ExportError(ValueError):
    """The checkpoint cannot be written as GGUF; the message says why."""


@dataclass
class Agreement:
    prompts: int
    max_abs_logit_diff: float
    top1_agree: int  # prompts whose most likely next token is the same on both sides
    greedy_identical: int  # prompts whose greedy completions are token for token the same
    greedy_tokens: int
    details: list[dict] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return (self.max_abs_logit_diff <= MAX_LOGIT_DIFF and self.top1_agree == self.prompts
                and self.greedy_identical >= self.prompts - 1)

    def as_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed, "max_logit_diff_allowed": MAX_LOGIT_DIFF}


def _permute(weights: np.ndarray, heads: int) -> np.ndarray:
    """transformers' q/k layout to llama.cpp's (the inverse of transformers' reverse permute)."""
    return weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:]) \
        .swapaxes(1, 2).reshape(weights.shape)


def _field(reader, key: str):
    found = reader.get_field(key)
    return found.contents() if found is not None else None


def export_gguf(checkpoint: str | Path, like: str | Path, out: str | Path, dtype: str = "f16") -> Path:
    """Write `checkpoint` (a transformers folder) as GGUF `out`, taking every metadata field of
    `like` (the GGUF it was trained from)."""
    from safetensors.numpy import load_file

    checkpoint = Path(checkpoint)
    weights: dict[str, np.ndarray] = {}
    for shard in sorted(checkpoint.glob("*.safetensors")):
        weights.update(load_file(str(shard)))
    if not weights:
        raise ExportError(f"no .safetensors weights in {checkpoint}")
    return write_gguf(weights, json.loads((checkpoint / "config.json").read_text()), like, out, dtype)


def write_gguf(weights: dict[str, np.ndarray], config: dict, like: str | Path, out: str | Path,
               dtype: str = "f16") -> Path:
    """Write transformers-named `weights` as GGUF `out` with `like`'s metadata. 1-D tensors (norms,
    biases) stay f32, as llama.cpp's converter keeps them."""
    import gguf

    if dtype not in TYPES:
        raise ExportError(f"unknown GGUF type {dtype!r}; choose one of {', '.join(TYPES)}")
    out = Path(out)
    reader = _reader(str(like))
    arch = _field(reader, gguf.Keys.General.ARCHITECTURE)
    if arch not in SUPPORTED:
        raise ExportError(f"GGUF export supports {', '.join(sorted(SUPPORTED))} models, not {arch!r}")
    if config.get("num_hidden_layers") != _field(reader, f"{arch}.block_count"):
        raise ExportError(f"the checkpoint has {config.get('num_hidden_layers')} layers but {like} has "
                          f"{_field(reader, f'{arch}.block_count')}: it was not trained from that file")
    arch_id = next(key for key, name in gguf.MODEL_ARCH_NAMES.items() if name == arch)
    names = gguf.get_tensor_name_map(arch_id, config["num_hidden_layers"])
    by_gguf_name = {}
    for hf_name in weights:
        base, dot, suffix = hf_name.rpartition(".")
        mapped = names.get_name(base)
        if mapped is not None:
            by_gguf_name[f"{mapped}.{suffix}"] = hf_name
    if "lm_head.weight" in weights and "token_embd.weight" not in by_gguf_name:
        by_gguf_name["token_embd.weight"] = "lm_head.weight"  # tied embeddings saved under one name

    writer = gguf.GGUFWriter(str(out), arch)
    for item in reader.fields.values():
        if item.name == gguf.Keys.General.ARCHITECTURE or item.name.startswith("GGUF.") \
                or item.name == gguf.Keys.General.FILE_TYPE:
            continue
        kind = item.types[0]
        writer.add_key_value(item.name, item.contents(), kind,
                             sub_type=item.types[-1] if kind == gguf.GGUFValueType.ARRAY else None)
    writer.add_file_type({"f16": gguf.LlamaFileType.MOSTLY_F16, "bf16": gguf.LlamaFileType.MOSTLY_BF16,
                          "f32": gguf.LlamaFileType.ALL_F32}[dtype])
    heads, kv_heads = config["num_attention_heads"], config.get("num_key_value_heads") or config["num_attention_heads"]
    for tensor in reader.tensors:
        if tensor.name not in by_gguf_name:
            raise ExportError(f"the checkpoint has no weight for the GGUF tensor {tensor.name}")
        data = weights[by_gguf_name[tensor.name]].astype(np.float32, copy=False)  # no copy of fp32 weights
        if arch in PERMUTED and ".attn_q." in tensor.name:
            data = _permute(data, heads)
        elif arch in PERMUTED and ".attn_k." in tensor.name:
            data = _permute(data, kv_heads)
        expected = tuple(reversed([int(d) for d in tensor.shape]))
        if data.shape != expected:
            raise ExportError(f"{tensor.name}: the checkpoint's shape {data.shape} is not the GGUF's {expected}")
        if data.ndim > 1 and dtype == "bf16":
            bf16 = gguf.GGMLQuantizationType.BF16
            writer.add_tensor(tensor.name, gguf.quants.quantize(data, bf16), raw_dtype=bf16)
        else:
            writer.add_tensor(tensor.name, data.astype(np.float16) if dtype == "f16" and data.ndim > 1 else data)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")  # a crash mid-write never leaves a loadable-looking file
    writer.path = partial
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.replace(out)
    return out


def _reader(path: str):
    """`path` parsed once per process while it is unchanged: parsing a GGUF's metadata (a 49k-token
    vocabulary) takes ~4 s here, and an RL round writes its policy with the same metadata every step."""
    stat = Path(path).stat()
    return _parsed(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _parsed(path: str, mtime_ns: int, size: int):
    import gguf

    return gguf.GGUFReader(path)


def agreement(model, tokenizer, gguf_path: str | Path, prompts=CHECK_PROMPTS,
              greedy_tokens: int = GREEDY_TOKENS) -> Agreement:
    """Compare the GGUF copy in llama.cpp with `model` (transformers, fp32) on `prompts`."""
    import torch
    from llama_cpp import Llama

    from engine.lm.prompt_tokens import encode_prompt

    model = model.eval()
    llm = Llama(model_path=str(gguf_path), n_ctx=512, n_threads=None, verbose=False, seed=0, logits_all=True)
    details, worst = [], 0.0
    for prompt in prompts:
        ids = encode_prompt(tokenizer, prompt)
        with torch.no_grad():
            reference = model(torch.tensor([ids])).logits[0, -1].numpy()
            generated = model.generate(torch.tensor([ids]), max_new_tokens=greedy_tokens, do_sample=False,
                                       attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                       pad_token_id=tokenizer.eos_token_id)[0, len(ids):].tolist()
        llm.reset()
        llm.eval(ids)
        served = np.array(llm.scores[llm.n_tokens - 1][:reference.shape[0]], dtype=np.float32)
        served_tokens = []
        for token in llm.generate(ids, top_k=1, temp=0.0, repeat_penalty=1.0, reset=True):
            if token == llm.token_eos() or len(served_tokens) >= greedy_tokens:
                break
            served_tokens.append(int(token))
        eos = tokenizer.eos_token_id
        generated = generated[:generated.index(eos)] if eos in generated else generated
        diff = float(np.max(np.abs(served - reference)))
        worst = max(worst, diff)
        details.append({"tokens": len(ids), "max_abs_logit_diff": round(diff, 5),
                        "top1_agree": int(served.argmax()) == int(reference.argmax()),
                        "greedy_identical": served_tokens == generated[:len(served_tokens)]
                        and len(served_tokens) == min(len(generated), greedy_tokens)})
    return Agreement(len(details), round(worst, 5), sum(d["top1_agree"] for d in details),
                     sum(d["greedy_identical"] for d in details), greedy_tokens, details)


def report_name(dtype: str = "f16") -> str:
    """Where a checkpoint records its `dtype` copy's check: gguf.json for the f16 copy that serves
    the version everywhere, gguf-bf16.json for the copy that writes puzzles on bf16 CPUs."""
    return REPORT if dtype == "f16" else f"gguf-{dtype}.json"


def export_checked(checkpoint: str | Path, like: str | Path, dtype: str = "f16") -> dict:
    """Export, check, and record the check in `checkpoint/report_name(dtype)`; returns that record."""
    import torch
    from transformers import AutoTokenizer

    from engine.lm.transformers_imports import build_causal_lm

    checkpoint = Path(checkpoint)
    out = export_gguf(checkpoint, like, checkpoint / GGUF_NAME.format(type=dtype), dtype)
    model = build_causal_lm(str(checkpoint), dtype=torch.float32)
    check = agreement(model, AutoTokenizer.from_pretrained(str(checkpoint)), out)
    record = {"file": out.name, "type": dtype, "like": str(like), "bytes": out.stat().st_size, **check.as_dict()}
    (checkpoint / report_name(dtype)).write_text(json.dumps(record, indent=1))
    return record


def full_precision_copy(spec: str, folder: str | Path, dtype: str = "f16", reuse: tuple[Path, ...] = ()) -> Path:
    """The model `spec` names, when it is a quantised GGUF (the packaged Q4 models), dequantised as
    transformers loads it and written as an `dtype` GGUF in `folder` (made once, checked like any
    copy). Evaluating through it measures the model that training starts from, at the precision a
    trained version is served at, so before and after compare like with like. A checked copy of the
    same file in one of the `reuse` folders (the one `make install` makes) is taken instead."""
    import torch
    from transformers import AutoTokenizer

    from engine.lm.model_source import resolve_model_source
    from engine.lm.transformers_imports import build_causal_lm

    source = resolve_model_source(spec)
    if not source.gguf_file:
        raise ExportError(f"{source.display_name} is not a GGUF file: it needs no full-precision copy")
    like = Path(source.path) / source.gguf_file
    name = f"{like.stem}.{dtype}.gguf"
    for made in (Path(place) / name for place in (*reuse, folder)):
        if _checked_copy_of(made, like):
            return made
    out = Path(folder) / name
    report = out.with_name(out.name + ".json")
    model = build_causal_lm(source.path, gguf_file=source.gguf_file, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(source.path, gguf_file=source.gguf_file)
    weights = {name: tensor.detach().numpy() for name, tensor in model.state_dict().items()}
    write_gguf(weights, model.config.to_dict(), like, out, dtype)
    check = agreement(model, tokenizer, out)
    report.write_text(json.dumps({"file": out.name, "type": dtype, "like": str(like), **check.as_dict()}, indent=1))
    if not check.passed:
        raise ExportError(f"the {dtype} copy of {source.display_name} disagrees with it: {check.as_dict()}")
    return out


def _checked_copy_of(copy: Path, like: Path) -> bool:
    """Whether `copy` is there and its report says it was made from `like` and passed its check."""
    try:
        record = json.loads(copy.with_name(copy.name + ".json").read_text())
    except (OSError, ValueError):
        return False
    return copy.is_file() and bool(record.get("passed")) and record.get("like") == str(like)


def served_copy(checkpoint: str | Path, dtype: str = "f16") -> Path | None:
    """The checkpoint's `dtype` GGUF copy if it passed its check (what llama.cpp may serve), else None."""
    report = Path(checkpoint) / report_name(dtype)
    try:
        record = json.loads(report.read_text())
    except (OSError, ValueError):
        return None
    path = Path(checkpoint) / str(record.get("file", ""))
    return path if record.get("passed") and path.is_file() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.lm.gguf_export", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="a transformers checkpoint folder")
    parser.add_argument("--like", required=True, type=Path, help="the GGUF it was trained from (metadata source)")
    parser.add_argument("--type", choices=TYPES, default="f16")
    args = parser.parse_args(argv)
    try:
        record = export_checked(args.checkpoint, args.like, args.type)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(record, indent=1))
    return 0 if record["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
