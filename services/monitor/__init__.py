"""The monitor: counts successive error events per configuration, disables a configuration
at the threshold through the control plane, emails its users, and forwards Stripe run
errors to an operator webhook."""
