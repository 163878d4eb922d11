"""Pure parsers, one module per webhook provider; they import nothing from `gateway`."""
