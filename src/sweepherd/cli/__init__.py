"""The command-line interface: thin modules that parse options, call the library and render."""
