"""The test suite.

Its processes run gRPC servers and clients and also start subprocesses (fork, then exec).
gRPC's fork support, on by default, runs handlers around every fork that reset gRPC's
state, and logs "Other threads are currently calling into gRPC, skipping fork() handlers"
when it cannot: a child that only execs needs none of it, and a handler that shuts down a
socket it shares with the parent can cut the parent's listener (a test once saw its
in-process server refuse connections). It is off for the suite and everything it starts.
Set here, before any test module imports grpc.
"""

import os

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
