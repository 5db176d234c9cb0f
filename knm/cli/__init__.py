"""The ``knm`` command. Local commands (``serve``, ``worker``, ``migrate``, ``admin``) act on the
server's own database; remote ones speak HTTP to a server."""
