"""Channel 3 of the exec protocol, parsed defensively."""

import json

import pytest

from adapters.kubernetes.exec_transport import parse_status

NON_ZERO = {
    "metadata": {},
    "status": "Failure",
    "message": "command terminated with non-zero exit code: exit status 3",
    "reason": "NonZeroExitCode",
    "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (json.dumps({"metadata": {}, "status": "Success"}), (0, None)),
        (json.dumps(NON_ZERO), (3, None)),
        (
            json.dumps(
                {
                    "status": "Failure",
                    "reason": "InternalError",
                    "message": 'exec: "claude": executable file not found in $PATH',
                }
            ),
            (None, 'exec: "claude": executable file not found in $PATH'),
        ),
        (
            json.dumps({**NON_ZERO, "details": {"causes": [{"reason": "ExitCode"}]}}),
            (None, NON_ZERO["message"]),
        ),
        ("", (None, "exit status unknown: the exec connection closed without a status")),
        ("not json", (None, "unreadable exec status: b'not json'")),
        ("[1]", (None, "unreadable exec status: b'[1]'")),
    ],
)
def test_exec_status(raw, expected):
    assert parse_status(raw.encode()) == expected
