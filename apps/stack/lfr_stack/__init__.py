"""The local stack: a Kafka-protocol broker, Redis and LFR's services as supervised processes on one
machine, for `make demo` (in the foreground), `make up` / `make down` (in the background), the
end-to-end tests and the benchmarks.

A maintained supervisor, circus, holds every process (docs/decisions/0013-a-supervised-local-stack.md):
a process that dies is started again, with a backoff when it keeps dying, as Kubernetes would; each
process dies with the supervisor, and the supervisor with whoever started it in the foreground;
every process carries the stack's folder in its environment, so that `make down` finds every one of
them whatever happened to the state file.
"""
