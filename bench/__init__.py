"""The lassod benchmark: scenarios, receiver and yardstick."""
