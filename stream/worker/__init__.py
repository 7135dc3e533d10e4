"""The streaming worker's parts that are not Faust wiring: engines, batches, state, web."""
