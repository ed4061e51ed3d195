"""Operating rheos: the ``rheos`` command line.

:mod:`rheos.operations.cli` builds the parser and dispatches; each command group lives in its
own ``cli_*`` module and registers itself with one ``add_parser(subparsers)`` function.
"""
