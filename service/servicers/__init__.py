"""gRPC servicers: proto <-> domain translation around the engine, errors to statuses."""
