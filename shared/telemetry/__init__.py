"""Observability shared by every jetpost process: OpenTelemetry traces (`tracing`),
Prometheus metrics (`metrics`, served by `server`, fed by `pollers` and `smtp`)."""
