"""Pieces of the request handlers that need no server."""

from mlbridge_server.serving.handlers import error_summary


def test_error_summary_finds_the_cause_in_a_graph_execution_error():
    message = (
        "Graph execution error:\n\nDetected at node StringToNumber defined at (most recent call last):\n"
        '  File "/x/model.py", line 3, in parse\n\n'
        "<stack traces unavailable>\nStringToNumberOp could not correctly convert string: abc\n"
        "\t [[{{node StringToNumber}}]] [Op:__inference_signature_wrapper_parse_97]"
    )
    assert error_summary(Exception(message)) == "StringToNumberOp could not correctly convert string: abc"


def test_error_summary_of_other_errors():
    assert error_summary(Exception("Incompatible shapes: [1] vs. [2] [Op:AddV2] name: ")) == (
        "Incompatible shapes: [1] vs. [2]"
    )
    assert error_summary(TypeError("first\nsecond")) == "first"
    assert error_summary(ValueError()) == "ValueError"


def test_long_error_messages_are_cut_to_fit_the_grpc_trailer():
    import grpc

    from mlbridge_server.serving.errors import MAX_MESSAGE_BYTES, invalid

    error = invalid('unknown input "' + "é" * 10_000 + '"')
    assert len(error.message.encode()) <= MAX_MESSAGE_BYTES
    assert error.message.endswith("(message cut)") and error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert invalid("short").message == "short"
