"""Sub-commands of `corpus`; each module has `register(subparsers)`."""
