"""Operations: the control-tower feed, SLA prediction, alerts, and audited manager actions."""
