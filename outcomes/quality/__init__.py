"""Model quality from labelled predictions: metrics, comparisons, the report and the gate. Pure."""
