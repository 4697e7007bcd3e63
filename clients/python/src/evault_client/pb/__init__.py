"""Generated protobuf and gRPC modules of proto/evault/v1 (see generate.py).

`log_pb2` holds the shared messages, `ingest_pb2_grpc.IngestServiceStub`,
`tree_pb2_grpc.TreeServiceStub` and `evidence_pb2_grpc.EvidenceServiceStub`
the public services.
"""
