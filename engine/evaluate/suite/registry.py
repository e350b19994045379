"""The benchmarks by name: the command line, the web app and the round gate look them up here."""
from __future__ import annotations

import importlib

from engine.evaluate.suite.base import Benchmark

# name -> "module:Class", imported on first use (each module reads its own data format)
BENCHMARKS = {
    "p3": "engine.evaluate.suite.p3:P3Test",
    "p3-validation": "engine.evaluate.suite.p3:P3Validation",
    "humaneval": "engine.evaluate.suite.humaneval:HumanEval",
    "humaneval-plus": "engine.evaluate.suite.evalplus:HumanEvalPlus",
    "mbpp": "engine.evaluate.suite.mbpp:Mbpp",
    "mbpp-validation": "engine.evaluate.suite.mbpp:MbppValidation",
    "mbpp-train": "engine.evaluate.suite.mbpp:MbppTrain",
    "mbpp-sanitized": "engine.evaluate.suite.mbpp:SanitizedMbpp",
    "mbpp-plus": "engine.evaluate.suite.evalplus:MbppPlus",
    "mbpp-execution": "engine.evaluate.suite.execution:ExecutionPrediction",
    "mbpp-execution-validation": "engine.evaluate.suite.execution:ExecutionPredictionValidation",
    "mathqa-python": "engine.evaluate.suite.mathqa:MathQaPython",
}


def names() -> list[str]:
    return list(BENCHMARKS)


def benchmark_class(name: str) -> type[Benchmark]:
    if name not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; choose one of {', '.join(BENCHMARKS)}")
    module, _, cls = BENCHMARKS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def get_benchmark(name: str, data_dir=None, prompt: str = "") -> Benchmark:
    return benchmark_class(name)(data_dir, prompt)
