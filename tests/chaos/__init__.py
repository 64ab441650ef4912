"""The chaos checker: Hubbub's promises (API.md "Every change, on every transport") held up
against kill -9, store and broker restarts, pauses, partitions, cut and stalled clients.

The unit and integration suites prove each mechanism on its own; only real processes failing
at random moments under load show whether they compose. So the checker starts its own
deployments (``deploy``), drives real clients on every transport on every node (``clients``)
and real senders (``workload``), injects a seeded schedule of faults (``faults``), and at the
end compares the store with the senders' acknowledgements and every client's view
(``oracle``). ``python -m tests.chaos --help`` runs it; ``make chaos`` is the long run.
"""
