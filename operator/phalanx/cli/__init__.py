"""``kubectl phalanx``: a kubectl plugin for people who run ReplicatedStores.

Beside the operator, not in it: it reads stores and their children through the API server, previews
with the dry run (``phalanx.dryrun``), and writes nothing but the three annotations a store answers
(``phalanx.dev/snapshot-request``, ``phalanx.dev/rollout-paused``, ``phalanx.dev/replace``). It never
imports Kopf, the handlers or the writer (``make layers`` holds it to that).

``client`` connects (any kubeconfig and context) and turns API errors into sentences; ``status``
renders a store; ``ask`` sends the annotations and follows what they started; ``bundle`` gathers a
support bundle; ``main`` is the command line.
"""
