"""The Open Inference Protocol (V2 REST): the request and answer documents, JSON and binary."""
