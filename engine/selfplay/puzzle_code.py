"""Reading and rewriting puzzle source: rename `sat`/`sol` to the prompts' `f<i>`/`g<i>`, drop
docstrings, find the parameters a solution shares with its puzzle, and fingerprint a puzzle so
that new names or formatting don't make a new one. Static only: nothing here runs the code."""
from __future__ import annotations

import ast
import contextlib
import hashlib
import io
import re
import sys
import tokenize
import warnings

TOP_LEVEL_DEF = re.compile(r"^def [A-Za-z_]\w*\(", re.M)  # where a top-level function opens in free text


class NotAFunction(ValueError):
    """The source does not define the expected top-level function."""


@contextlib.contextmanager
def big_literals():
    """P3 has puzzles with integer literals of thousands of digits, over Python's default limit for
    converting between int and str; lift it only while reading or writing source."""
    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        yield
    finally:
        sys.set_int_max_str_digits(before)


def parse(source: str) -> ast.Module:
    """`ast.parse`, quietly: an escape Python does not know, in a string a model or a dataset wrote,
    is not a warning on our console."""
    with big_literals(), warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return ast.parse(source)


def unparse(node: ast.AST) -> str:
    with big_literals():
        return ast.unparse(node)


def puzzle_name(sat_source: str) -> str:
    """The name the puzzle's function has in its own source (`sat` for P3's); the judge defines it
    under that name, so a solution may call it."""
    return first_function(sat_source).name


def first_function(source: str) -> ast.FunctionDef:
    """The first top-level `def` of `source`; raises SyntaxError or NotAFunction."""
    tree = parse(source)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            return node
    raise NotAFunction("no function definition")


def _strip_docstring(function: ast.FunctionDef) -> None:
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        function.body = body[1:] or [ast.Pass()]


def rename_function(source: str, new_name: str, drop_docstring: bool = True,
                    calls: dict[str, str] | None = None) -> str:
    """`source`'s first function under `new_name` (recursive calls follow), without its docstring.
    `calls` renames other functions it calls ({"f6": "sat"}), where the function binds no such name.

    Written back with `ast.unparse`, so comments and formatting are normalised too."""
    return unparse(_renamed(source, new_name, drop_docstring, calls))


def _bound_names(function: ast.FunctionDef) -> set[str]:
    """Names the function binds itself: parameters, assignments, nested definitions, imports."""
    bound = {arg.arg for arg in ast.walk(function.args) if isinstance(arg, ast.arg)}
    for node in ast.walk(function):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node is not function:
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return bound


def _renamed(source: str, new_name: str, drop_docstring: bool = True,
             calls: dict[str, str] | None = None) -> ast.FunctionDef:
    function = first_function(source)
    old_name = function.name
    bound = _bound_names(function) if calls else set()
    mapping = {**{old: new for old, new in (calls or {}).items() if old not in bound and old != old_name},
               old_name: new_name}
    function.name = new_name
    if drop_docstring:
        _strip_docstring(function)
    for node in ast.walk(function):
        if isinstance(node, ast.Name) and node.id in mapping:
            node.id = mapping[node.id]
    return function


def _positional(function: ast.FunctionDef) -> list[ast.arg]:
    return function.args.posonlyargs + function.args.args


def extra_parameters(sat_source: str) -> str:
    """The parameters after the answer, as source (`"n: int = 3, s='ab'"`): a solution's header."""
    function = first_function(sat_source)
    args = function.args
    positional = _positional(function)
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    parts = []
    for arg, default in list(zip(positional, defaults))[1:]:
        text = arg.arg + (f": {unparse(arg.annotation)}" if arg.annotation is not None else "")
        if default is not None:
            text += f" = {unparse(default)}" if arg.annotation is not None else f"={unparse(default)}"
        parts.append(text)
    return ", ".join(parts)


def extra_parameter_names(sat_source: str) -> list[str]:
    """The names of the parameters after the answer, in order."""
    return [arg.arg for arg in _positional(first_function(sat_source))[1:]]


def answer_annotation(sat_source: str) -> str:
    """The answer parameter's annotation as source (`"List[int]"`), or "" where it has none."""
    positional = _positional(first_function(sat_source))
    if not positional or positional[0].annotation is None:
        return ""
    return unparse(positional[0].annotation)


def typed_solution(solution_source: str, new_name: str, answer_type: str,
                   calls: dict[str, str] | None = None) -> str:
    """`solution_source` renamed (as `rename_function`), declaring it returns `answer_type` where it
    declares nothing: the solving prompts open `g` with the puzzle's answer type, so training
    examples and worked examples show it the same way."""
    function = _renamed(solution_source, new_name, calls=calls)
    if answer_type and function.returns is None:
        function.returns = ast.parse(answer_type, mode="eval").body
    return without_blank_lines(unparse(function))


def without_blank_lines(source: str) -> str:
    """`source` without its empty lines, where that changes nothing but layout. `ast.unparse` puts
    one before every nested `def`; the prompts open `g`'s body right after its header, so a
    training example that opens with a blank line teaches a start the model is never given."""
    compact = "\n".join(line for line in source.split("\n") if line.strip())
    if compact == source:
        return source
    with big_literals():
        try:
            same = ast.dump(ast.parse(compact)) == ast.dump(ast.parse(source))
        except SyntaxError:
            same = False
    return compact if same else source


def answer_parameter(sat_source: str) -> str:
    function = first_function(sat_source)
    positional = _positional(function)
    if not positional:
        raise NotAFunction(f"{function.name}() has no answer parameter")
    return positional[0].arg


class _Canonical(ast.NodeTransformer):
    """Names bound inside the function become v0, v1, … in order of first appearance."""

    def __init__(self, function_name: str):
        self.names: dict[str, str] = {function_name: "f"}

    def _canon(self, name: str) -> str:
        return self.names.setdefault(name, f"v{len(self.names)}")

    def visit_arg(self, node: ast.arg) -> ast.arg:
        node.arg = self._canon(node.arg)
        node.annotation = self.visit(node.annotation) if node.annotation else None
        return node

    def visit_Name(self, node: ast.Name) -> ast.Name:
        if isinstance(node.ctx, ast.Store) or node.id in self.names:
            node.id = self._canon(node.id)
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.FunctionDef:
        node.name = self._canon(node.name)
        _strip_docstring(node)
        node.returns = None
        self.generic_visit(node)
        return node


def fingerprint(sat_source: str) -> str:
    """A hash of the puzzle's normalised AST: renaming its function or variables, reformatting,
    comments, docstrings and the return annotation do not change it; anything else does."""
    function = first_function(sat_source)
    canonical = _Canonical(function.name).visit(function)
    with big_literals():
        dumped = ast.dump(canonical, annotate_fields=False)
    return hashlib.sha256(dumped.encode()).hexdigest()[:32]


def complete_function(header: str, completion: str) -> str:
    """`header` (an open `def f7(`) plus the model's continuation, cut where the function ends: at
    the first statement that starts in column 0 after the signature (the paper's "first unindented
    line"). Read with Python's tokenizer, so a bracket or a quote inside a string or a comment
    neither keeps the signature open nor ends it."""
    text = header + completion
    lines = text.split("\n")
    end = _function_end(text)
    return "\n".join(lines[:end]).rstrip() + "\n"


_LAYOUT = {tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}


def _function_end(text: str) -> int | None:
    """The number of lines the function spans: up to the first token in column 0 after the
    signature's logical line. Where the tokenizer gives up before that point (an unclosed
    triple-quoted string in the junk that follows), the first non-blank unindented line after the
    signature; None (keep everything) where not even the signature ends."""
    signature_end = None
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.NEWLINE and signature_end is None:
                signature_end = token.end[0]
            elif signature_end is not None and token.type not in _LAYOUT and token.start[1] == 0:
                return token.start[0] - 1
    except (tokenize.TokenError, SyntaxError):
        pass
    if signature_end is None:
        return None
    lines = text.split("\n")
    for index in range(signature_end, len(lines)):
        if lines[index].strip() and not lines[index][0].isspace():
            return index
    return None


def renamed_as_written(source: str, new_name: str) -> str:
    """`source`'s first function under `new_name`, without its docstring, otherwise as its author
    wrote it (comments, layout, literals). The generation prompt shows puzzles so: `ast.unparse`
    writes code unlike P3's sources (other quotes, extra parentheses, no comments), and the model
    learns to write what it is shown. Only name tokens change, never a string or a comment that
    mentions the name. Falls back to `rename_function` where the layout cannot be kept."""
    function = first_function(source)
    lines = source.split("\n")
    first = min([function.lineno] + [d.lineno for d in function.decorator_list]) - 1
    body = lines[first:function.end_lineno]
    docstring = function.body[0] if function.body and isinstance(function.body[0], ast.Expr) \
        and isinstance(function.body[0].value, ast.Constant) and isinstance(function.body[0].value.value, str) else None
    drop = set()
    if docstring is not None:
        start, end = docstring.lineno - 1 - first, docstring.end_lineno - 1 - first
        whole_lines = not body[start][:docstring.col_offset].strip() and not body[end][docstring.end_col_offset:].strip()
        if len(function.body) == 1 or not whole_lines:
            return rename_function(source, new_name)
        drop = set(range(start, end + 1))
    text = "\n".join(line for index, line in enumerate(body) if index not in drop)
    try:
        names = [t for t in tokenize.generate_tokens(io.StringIO(text).readline)
                 if t.type == tokenize.NAME and t.string == function.name]
    except (tokenize.TokenError, SyntaxError):
        return rename_function(source, new_name)
    out = text.split("\n")
    for token in reversed(names):  # right to left, so earlier columns stay put
        row, col = token.start[0] - 1, token.start[1]
        out[row] = out[row][:col] + new_name + out[row][col + len(function.name):]
    renamed = "\n".join(out).rstrip()
    try:
        same = fingerprint(renamed) == fingerprint(source)
    except (SyntaxError, ValueError):
        same = False
    return renamed if same else rename_function(source, new_name)
