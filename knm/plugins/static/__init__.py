"""The ``static`` cluster provider: clusters whose nodes are listed by hand."""
