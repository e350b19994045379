"""What precision a model file holds, read from its header: every result records it."""
from __future__ import annotations


def gguf_weight_type(path: str) -> str:
    """"q4_1", "q4_k_m", "f16", ... from a GGUF file's header ("unknown" if it does not say)."""
    import gguf

    found = gguf.GGUFReader(path).get_field(gguf.Keys.General.FILE_TYPE)
    try:
        return gguf.LlamaFileType(int(found.contents())).name.removeprefix("MOSTLY_").removeprefix("ALL_").lower()
    except (AttributeError, ValueError, TypeError):
        return "unknown"
