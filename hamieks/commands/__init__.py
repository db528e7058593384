"""The CLI's commands, one module each, exposing `add_arguments(parser)` and `run(args) -> int`.

Command modules parse arguments, call the library modules of `hamieks` and print; they hold no
domain logic, so a library module and a command module are never the same file.
"""
