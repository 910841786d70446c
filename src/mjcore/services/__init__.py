"""Use cases: plain async functions over the ports, one unit of work each."""
