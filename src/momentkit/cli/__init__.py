"""The ``momentkit`` command line. One module per subcommand, each with ``register(subparsers)``."""
