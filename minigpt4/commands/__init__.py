"""The console commands, one module per command: each parses its command line, calls the library
(``minigpt4.training``, ``minigpt4.evaluation``, ``minigpt4.datasets``, ``minigpt4.models``) and prints.

Every module has ``main(argv)``, which returns what the command produced and raises ``UserError``s, and
``run(argv)``, the exit status (``minigpt4.errors.run_command``); ``minigpt4.cli`` dispatches to ``run``.
"""
