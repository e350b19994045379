"""The structure-aware term of distillation: token cross-entropy alone treats a stray word of the
reasoning like the `return` that closes the program; this term puts extra weight on the tokens that
build the program's structure, so the student is held to the solution's syntax tree and data flow.

For one batch, over the answer's tokens t (the prompt is never trained on):

    L = CE + λ · S,   CE = Σ_t ce_t / N,   S = Σ_t s_t · ce_t / Σ_t s_t   (S = 0 when Σ_t s_t = 0)

ce_t is token t's cross-entropy, N the number of answer tokens and λ the `structure_weight` setting
(λ = 0 is plain cross-entropy). A token's structural weight s_t is the sum of two halves, each
given when the token overlaps a span of that role in the answer's code (the reasoning text and the
code fences have s_t = 0):
- syntax, ½: a keyword or an operator/delimiter token of the program (Python's tokenizer): what
  opens and closes the nodes of the syntax tree CodeBLEU's syntax match compares;
- data flow, ½: an occurrence of a variable the program binds (a parameter; an assignment, `for`,
  `with`, `except`, comprehension or walrus target; an import), where it is defined and where it
  is used: the nodes of the data-flow graph CodeBLEU's data-flow match compares.
So S is the mean cross-entropy over the program's structural tokens, weighted 1 where a token is
both; CE keeps every token of the reasoning and code in the loss.
"""
from __future__ import annotations

import ast
import io
import keyword
import tokenize

SYNTAX, DATA_FLOW = 0.5, 0.5


def bound_names(tree: ast.AST) -> set[str]:
    """Every name the program binds: its data-flow variables."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            names.update(node.names)
    return names


def structure_spans(code: str) -> list[tuple[int, int, str]]:
    """(start, end, role) character spans of `code`'s structural tokens: "syntax" for keywords and
    operators, "flow" for occurrences of bound names; [] when the code does not parse."""
    try:
        names = bound_names(ast.parse(code))
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (SyntaxError, ValueError, RecursionError, MemoryError, tokenize.TokenError, IndentationError):
        return []
    line_starts = [0]
    for line in code.splitlines(keepends=True):
        line_starts.append(line_starts[-1] + len(line))
    spans = []
    for token in tokens:
        if token.type == tokenize.OP or (token.type == tokenize.NAME and keyword.iskeyword(token.string)):
            role = "syntax"
        elif token.type == tokenize.NAME and token.string in names:
            role = "flow"
        else:
            continue
        (row, col), (end_row, end_col) = token.start, token.end
        spans.append((line_starts[row - 1] + col, line_starts[end_row - 1] + end_col, role))
    return spans


def token_weights(offsets: list[tuple[int, int]], code_start: int, code: str) -> list[float]:
    """s_t for tokens with character `offsets` into a text that holds `code` at `code_start`: the
    roles (syntax, data flow) of the code spans each token overlaps, each counted once."""
    spans = [(code_start + start, code_start + end, role) for start, end, role in structure_spans(code)]
    weights = []
    index = 0  # spans are in order and do not overlap, as are the tokens' offsets
    for start, end in offsets:
        while index < len(spans) and spans[index][1] <= start:
            index += 1
        roles = {role for _, _, role in _overlapping(spans, index, start, end)}
        weights.append(SYNTAX * ("syntax" in roles) + DATA_FLOW * ("flow" in roles))
    return weights


def _overlapping(spans, index: int, start: int, end: int):
    while end > start and index < len(spans) and spans[index][0] < end:
        yield spans[index]
        index += 1


def structure_aware_loss(logits, labels, weights, structure_weight: float):
    """(L, CE, S) for a batch: `logits` [B, T, V], `labels` [B, T] (-100 where not trained), and
    `weights` [B, T] (s_t of the token at that position); positions are shifted as for a causal LM
    (the logits at t predict the label at t+1)."""
    import torch
    import torch.nn.functional as F

    shifted = logits[:, :-1, :].float()
    targets = labels[:, 1:]
    s = weights[:, 1:].to(shifted.dtype)
    trained = targets != -100
    ce = F.cross_entropy(shifted.reshape(-1, shifted.size(-1)), targets.reshape(-1).clamp_min(0),
                         reduction="none").view_as(targets) * trained
    count = trained.sum().clamp_min(1)
    ce_mean = ce.sum() / count
    s = s * trained
    mass = s.sum()
    structure = (s * ce).sum() / mass if mass > 0 else torch.zeros((), dtype=ce_mean.dtype, device=ce_mean.device)
    return ce_mean + structure_weight * structure, ce_mean.detach(), structure.detach()
