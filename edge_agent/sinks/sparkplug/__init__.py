"""Sparkplug B 3.0 edge node (issue 17): the codec here, the session beside it.

The payload schema ``sparkplug_b.proto`` is the one printed in the specification
(eclipse-sparkplug/sparkplug, commit e45b610); ``sparkplug_b_pb2.py`` and its stub
``sparkplug_b_pb2.pyi`` are generated from it and committed, so that grpcio-tools is
needed only to regenerate them, never at run time. Regenerate (from the repository
root, with grpcio-tools 1.85.1, whose protoc is libprotoc 35.1)::

    python -m grpc_tools.protoc --proto_path=. --python_out=. --pyi_out=. \\
        edge_agent/sinks/sparkplug/sparkplug_b.proto

The generated module checks at import that the ``protobuf`` runtime is at least the
version of the code generator (7.35.1) and of the same major version: pyproject.toml
asks for ``protobuf>=7.35.1,<8`` to match. Regenerating with a newer grpcio-tools
means moving that floor with it.
"""
