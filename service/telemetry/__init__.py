"""What an operator sees of the gateway: metrics, the access log, traces (issue 18).

Every call that reaches the service, whether through the HTTP layer (either channel) or
straight over gRPC, is observed once, by the wrapper that `Service.register` puts
around each servicer method (observed.py). The wrapper gives the call a `CallRecord`;
the pipeline, the accounting gate and the engine fill it in as the call runs, and when
the call ends the record is counted (metrics.py) and written as one access-log line
(access_log.py). Nothing here takes a key or a request id as a metric label.
"""
