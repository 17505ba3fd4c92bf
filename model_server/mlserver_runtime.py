"""The source of the runtime ``streamflow export mlserver`` writes beside model-settings.json.

MLServer loads a model's ``implementation`` from the model's own directory, so the export writes
this module there as text, its rules (``__RULES__``) filled in as a Python literal: MLServer's
environment imports none of this project. ``model_server/mlserver_export.py`` fills it in.
"""

from __future__ import annotations

import pprint
from typing import Any

MODULE = "checked_model"
CLASS = "CheckedSKLearnModel"

SOURCE = '''"""The model's runtime: MLServer's scikit-learn runtime, which first checks each
request's inputs by the rules of StreamFlow's model API, so that bad input is a 400 naming the
input and the row, never a score or a 500.

Written by `streamflow export mlserver`: RULES are read from the model API's schema at export
time, the messages are its own. Imports only what MLServer's environment holds.
"""

import numpy as np
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver_sklearn import SKLearnModel

RULES = __RULES__
INPUTS = {rule["name"]: rule for rule in RULES["inputs"]}
TAKES = ", ".join(f"{rule['name']} ({rule['datatype']})" for rule in RULES["inputs"])


class CheckedSKLearnModel(SKLearnModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        check_tensors(payload)
        return await super().predict(payload)

    def decode_request(self, inference_request, default_codec=None):
        # The runtime's predict decodes the request here, once: its values are checked on the
        # way to the pipeline.
        try:
            frame = super().decode_request(inference_request, default_codec)
        except (TypeError, ValueError) as error:
            unreadable(inference_request, error)
        check_values(frame)
        return frame


def refuse(name, message):
    # MLServer answers an InferenceError with a 400 and {"error": message}.
    raise InferenceError(f"input {name!r}: {message}")


def check_tensors(payload):
    """Names, datatypes, shapes and the row count, before anything is decoded."""
    seen = {}
    for tensor in payload.inputs:
        rule = INPUTS.get(tensor.name)
        if rule is None:
            refuse(tensor.name, f"is not an input of the model, which takes {TAKES}")
        datatype = getattr(tensor.datatype, "value", tensor.datatype)  # an enum, or its value
        if datatype != rule["datatype"]:
            refuse(tensor.name, f"datatype {datatype}; the model takes {rule['datatype']}")
        seen[tensor.name] = tensor
    first, rows = None, 0
    for name in INPUTS:
        if name not in seen:
            refuse(name, f"is missing; the model takes {TAKES}")
        shape = list(seen[name].shape)
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            refuse(name, f"shape {shape}; the model takes [n] or [n, 1]")
        if first is None:
            first, rows = name, shape[0]
        elif shape[0] != rows:
            refuse(name, f"has {shape[0]} rows, input {first!r} has {rows}")
    low, high = RULES["min_rows"], RULES["max_rows"]
    if rows < low:
        refuse(first, f"holds no rows; a request takes {low} to {high}")
    if high is not None and rows > high:
        refuse(first, f"holds {rows} rows; a request takes at most {high}")


# What the numbers' datatypes hold, and how the model API says it (bool is an int to Python;
# null is JSON's NaN, decoded as one, and refused by check_values as not finite).
KINDS = {
    "INT64": (int, "integers"),
    "FP64": ((int, float, type(None)), "numbers"),
    "BOOL": (bool, "true/false"),
}


def unreadable(payload, error):
    """The input whose data its datatype cannot hold, named (MLServer's decoding does not)."""
    for tensor in payload.inputs:
        datatype = getattr(tensor.datatype, "value", tensor.datatype)
        kind, words = KINDS.get(datatype, (object, ""))
        for value in flat(getattr(tensor.data, "root", tensor.data)):
            if not isinstance(value, kind) or (datatype != "BOOL" and isinstance(value, bool)):
                refuse(tensor.name, f"{datatype} data must be {words}, not {value!r}")
    raise InferenceError(f"the inputs cannot be decoded: {error}")


def flat(data):
    for item in data:
        if isinstance(item, list):
            yield from flat(item)
        else:
            yield item


def check_values(frame):
    """Every value: the first row refused, and in it the first input, as the model API does."""
    if not hasattr(frame, "columns"):  # a request that asked for another content type
        raise InferenceError("the inputs must be decoded as columns: content type 'pd'")
    refused = []  # (row, input's position, check's position, message)
    for position, (name, rule) in enumerate(INPUTS.items()):
        column = frame[name]
        if "categories" in rule:
            known = column.isin(rule["categories"]).to_numpy()
            if not known.all():
                row = int(np.argmin(known))
                prefix, suffix = rule["unknown"]
                refused.append((row, position, 0, prefix + repr(column.iloc[row]) + suffix))
            continue
        if rule["datatype"] == "BOOL":
            continue
        values = column.to_numpy(dtype=np.float64)
        low = -np.inf if rule["low"] is None else rule["low"]
        high = np.inf if rule["high"] is None else rule["high"]
        checks = [
            (~np.isfinite(values), rule["not_finite"]),
            (values < low, rule["below"]),
            (values > high, rule["above"]),
        ]
        for order, (bad, message) in enumerate(checks):
            if message is not None and bad.any():
                refused.append((int(np.argmax(bad)), position, order, message))
    if refused:
        row, position, _, message = min(refused)
        refuse(list(INPUTS)[position], f"row {row}: {message}")
'''


def render(rules: dict[str, Any]) -> str:
    """The module's text with ``rules`` in it; checked to compile."""
    literal = pprint.pformat(rules, width=99, sort_dicts=False)
    source = SOURCE.replace("__RULES__", literal, 1)
    compile(source, f"{MODULE}.py", "exec")
    return source
