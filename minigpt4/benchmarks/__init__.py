"""Benchmarks of training and evaluation throughput, through the real commands (``train.py``,
``python -m minigpt4.cli eval``) run as subprocesses, reading what they write (``log.txt``,
``metrics.json``) and writing Markdown tables into BENCHMARKS.md.

    python -m minigpt4.benchmarks cpu --out BENCHMARKS.md                    # stand-in size, about 3.5 min on 2 quiet cores
    python -m minigpt4.benchmarks full --size vicuna-7b --device cuda --out BENCHMARKS.md   # official sizes, random weights

``cpu``: ``minigpt4.benchmarks.cpu`` (report: ``cpu_report``); ``full``: ``minigpt4.benchmarks.full``.
"""
