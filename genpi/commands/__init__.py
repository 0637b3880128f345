"""One module per CLI verb: each has HELP, add_arguments(parser) and main(args) -> exit code."""
