"""Provider adapters. Nothing here imports grpc or the generated protos (a test checks)."""
