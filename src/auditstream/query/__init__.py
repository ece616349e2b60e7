"""The one filter model: a tree every surface compiles to, and its compilers."""
