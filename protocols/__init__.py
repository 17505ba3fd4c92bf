"""The wire formats of the product's two protocols, as a library with no process of its own.

The model API (`/predict`, `/predict/batch`) and the Open Inference Protocol ("V2", the REST
protocol of KServe, MLServer, Triton and Seldon Core 2, with Triton's binary tensor extension)
are spoken by the model server, by the gateway's two front doors and read by the prediction
log. Whatever one of them needs to know about a protocol's bytes lives here once: decoding and
encoding V2 documents (`v2/codec.py`), translating between the two protocols, and reading a
version's score out of its answer.

It imports only the standard library, numpy, orjson and `vocabulary`, so every process may use
it without pulling in a web framework, and it never does I/O: bytes in, values out.
"""
