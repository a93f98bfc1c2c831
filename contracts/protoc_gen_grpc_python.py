"""A protoc plugin (stdin CodeGeneratorRequest -> stdout CodeGeneratorResponse) for the gRPC
Python stubs, so `buf generate` can drive it like any other plugin.

grpcio-tools ships the gRPC generator only inside its own protoc (`--grpc_python_out`), not as
a `protoc-gen-grpc_python` program; this shim hands buf's already-parsed descriptors to that
protoc through `--descriptor_set_in` and returns what it writes. The generator version is the
one pinned in requirements/lock.txt.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc


def main() -> int:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    # The gRPC generator only reads services, so proto3 `optional` fields are no concern of it.
    response = plugin_pb2.CodeGeneratorResponse(
        supported_features=plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    )
    with tempfile.TemporaryDirectory() as tmp:
        descriptors = Path(tmp) / "descriptors.binpb"
        descriptors.write_bytes(descriptor_pb2.FileDescriptorSet(file=request.proto_file).SerializeToString())
        out = Path(tmp) / "out"
        out.mkdir()
        args = ["protoc", f"--descriptor_set_in={descriptors}", f"--grpc_python_out={out}", *request.file_to_generate]
        if protoc.main(args) != 0:
            response.error = "grpc_tools.protoc failed on " + ", ".join(request.file_to_generate)
        else:
            for path in sorted(out.rglob("*.py")):
                response.file.add(name=str(path.relative_to(out)), content=path.read_text())
    sys.stdout.buffer.write(response.SerializeToString())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
