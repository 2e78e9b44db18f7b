"""Operations: health checks, Prometheus metrics, structured logs and operator commands."""
