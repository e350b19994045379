"""The RLCF paper's second reward signal: a small classifier, trained alongside the policy, that
tells a task's reference program from the policy's programs for it; P(reference-like) enters the
reward with a weight (GroundingConfig.discriminator_weight).

Small on purpose: hashed counts of the program's Python tokens and token pairs, and a logistic
regression on them (a torch EmbeddingBag), so it trains a step in milliseconds on a CPU and needs
nothing from a model hub. It is saved beside the round's checkpoints and with the trained model."""
from __future__ import annotations

import io
import re
import tokenize
import zlib
from pathlib import Path

BUCKETS = 1 << 16
_WORDS = re.compile(r"[A-Za-z_]\w*|\d+|\S")


def program_tokens(code: str) -> list[str]:
    """Python's tokens of `code` (names, operators, literals), or a plain word split if it does not tokenize."""
    try:
        found = [t.string for t in tokenize.generate_tokens(io.StringIO(code).readline)
                 if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.ENDMARKER)]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        found = _WORDS.findall(code)
    return [t if t.strip() else f"<{len(t)}>" for t in found]


def features(code: str, buckets: int = BUCKETS) -> list[int]:
    tokens = program_tokens(code or "")
    grams = tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:])]
    return [zlib.crc32(gram.encode()) % buckets for gram in grams] or [0]


class Discriminator:
    def __init__(self, buckets: int = BUCKETS, learning_rate: float = 0.05, seed: int = 0):
        import torch

        torch.manual_seed(seed)
        self.buckets = buckets
        self.weights = torch.nn.EmbeddingBag(buckets, 1, mode="mean")
        torch.nn.init.zeros_(self.weights.weight)
        self.bias = torch.nn.Parameter(torch.zeros(1))
        self.optimizer = torch.optim.Adam([*self.weights.parameters(), self.bias], lr=learning_rate)
        self.steps = 0

    def _logits(self, codes: list[str]):
        import torch

        bags = [features(code, self.buckets) for code in codes]
        flat = torch.tensor([i for bag in bags for i in bag], dtype=torch.long)
        offsets = torch.tensor([0, *torch.tensor([len(b) for b in bags]).cumsum(0)[:-1].tolist()], dtype=torch.long)
        return self.weights(flat, offsets).squeeze(1) + self.bias

    def score(self, codes: list[str]) -> list[float]:
        """P(reference-like) for each program."""
        import torch

        if not codes:
            return []
        with torch.no_grad():
            return [round(float(p), 6) for p in torch.sigmoid(self._logits(codes))]

    def train_step(self, references: list[str], generated: list[str]) -> dict:
        """One step on references (label 1) and the policy's programs (label 0): loss and accuracy."""
        import torch

        codes = [c for c in references if c] + [c for c in generated if c]
        if not codes:
            return {"loss": None, "accuracy": None}
        labels = torch.tensor([1.0] * sum(1 for c in references if c) + [0.0] * sum(1 for c in generated if c))
        logits = self._logits(codes)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.steps += 1
        accuracy = float(((logits.detach() > 0).float() == labels).float().mean())
        return {"loss": round(float(loss), 6), "accuracy": round(accuracy, 4)}

    def save(self, path: str | Path) -> None:
        """Atomically (a crash never leaves half a file where the round will look)."""
        import torch

        path = Path(path)
        partial = path.with_suffix(".partial")
        torch.save({"buckets": self.buckets, "weights": self.weights.state_dict(), "bias": self.bias.detach(),
                    "optimizer": self.optimizer.state_dict(), "steps": self.steps}, partial)
        partial.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> Discriminator:
        import torch

        state = torch.load(path, weights_only=True)
        found = cls(state["buckets"])
        found.weights.load_state_dict(state["weights"])
        with torch.no_grad():
            found.bias.copy_(state["bias"])
        found.optimizer.load_state_dict(state["optimizer"])
        found.steps = int(state["steps"])
        return found
